"""The report's counting, in SQL: distinct clinic-local days with readings per 30-day period, and
the month's clinician minutes, for every patient of a clinic with an episode overlapping a month.

Readings are never loaded into Python: one statement returns a row per (episode, period) that
overlaps the month with its day count, and one returns the minutes per patient. Days are counted
as ``(measured_at AT TIME ZONE clinic.timezone)::date``, which PostgreSQL computes from the IANA
rules for each instant, so days across a DST change are right. Readings are selected by instant
ranges (for the index) widened by a day on each side, then kept by exact local date, so a day
whose local midnight does not exist (a DST change at midnight) loses nothing. Dead letters live in
their own table: only stored readings are counted.
"""

from __future__ import annotations

from typing import Any, Final
from uuid import UUID

import psycopg

from ingest.billing.months import Month
from ingest.db.rows import fetch_all, fetch_one

#: The month's episodes and their periods that overlap the month, each with its day count, and
#: per episode whether a period before the first of them already had readings on 2 days.
PERIODS_SQL: Final = """
WITH b AS (
    SELECT c.timezone AS tz, %(first)s::date AS m_first, %(last)s::date AS m_last,
           (%(first)s::date::timestamp AT TIME ZONE c.timezone) - interval '1 day' AS m_from,
           ((%(last)s::date + 1)::timestamp AT TIME ZONE c.timezone) + interval '1 day' AS m_to
    FROM clinics c WHERE c.id = %(clinic)s
), eps AS (
    SELECT e.id AS episode_id, e.patient_id, e.started_at, e.ended_at, b.tz, b.m_first, b.m_last,
           (e.started_at AT TIME ZONE b.tz)::date AS d1,
           ((e.ended_at - interval '1 microsecond') AT TIME ZONE b.tz)::date AS d_last
    FROM monitoring_episodes e
    JOIN patients p ON p.id = e.patient_id
    CROSS JOIN b
    WHERE p.clinic_id = %(clinic)s
      AND (%(patient)s::uuid IS NULL OR p.id = %(patient)s::uuid)
      AND (e.ended_at IS NULL OR e.ended_at > e.started_at)
      AND e.started_at < b.m_to AND (e.ended_at IS NULL OR e.ended_at > b.m_from)
), periods AS (
    SELECT eps.*, k,
           eps.d1 + 30 * (k - 1) AS p_start,
           CASE WHEN eps.d_last IS NULL THEN eps.d1 + 30 * k - 1
                ELSE least(eps.d1 + 30 * k - 1, eps.d_last) END AS p_end
    FROM eps
    CROSS JOIN LATERAL generate_series(
        greatest(1, (eps.m_first - eps.d1) / 30 + 1), (eps.m_last - eps.d1) / 30 + 1) AS k
    WHERE eps.d_last IS NULL OR eps.d1 + 30 * (k - 1) <= eps.d_last
)
SELECT pr.episode_id, pr.patient_id, pr.k AS index, pr.p_start AS start, pr.p_end AS "end",
       days.n AS days,
       (pr.k > 1 AND pr.k = min(pr.k) OVER (PARTITION BY pr.episode_id) AND EXISTS (
            SELECT 1 FROM readings r
            WHERE r.patient_id = pr.patient_id
              AND r.measured_at >= pr.started_at
              AND r.measured_at < (pr.p_start::timestamp AT TIME ZONE pr.tz)
            GROUP BY ((r.measured_at AT TIME ZONE pr.tz)::date - pr.d1) / 30
            HAVING count(DISTINCT (r.measured_at AT TIME ZONE pr.tz)::date) >= 2
       )) AS setup_earned_before
FROM periods pr
CROSS JOIN LATERAL (
    SELECT count(DISTINCT (r.measured_at AT TIME ZONE pr.tz)::date)::int AS n
    FROM readings r
    WHERE r.patient_id = pr.patient_id
      AND r.measured_at >= pr.started_at
      AND (pr.ended_at IS NULL OR r.measured_at < pr.ended_at)
      AND r.measured_at >= (pr.p_start::timestamp AT TIME ZONE pr.tz) - interval '1 day'
      AND r.measured_at < ((pr.p_end + 1)::timestamp AT TIME ZONE pr.tz) + interval '1 day'
      AND (r.measured_at AT TIME ZONE pr.tz)::date BETWEEN pr.p_start AND pr.p_end
) days
WHERE pr.p_end >= pr.m_first AND pr.p_start <= pr.m_last
ORDER BY pr.patient_id, pr.episode_id, pr.k
"""

#: The month's clinician minutes per patient (entries not deleted, performed in the local month).
MINUTES_SQL: Final = """
SELECT t.patient_id, sum(t.minutes)::int AS minutes, bool_or(t.interactive) AS interactive
FROM clinician_time t
JOIN patients p ON p.id = t.patient_id
CROSS JOIN (SELECT timezone AS tz FROM clinics WHERE id = %(clinic)s) c
WHERE p.clinic_id = %(clinic)s
  AND (%(patient)s::uuid IS NULL OR p.id = %(patient)s::uuid)
  AND t.deleted_at IS NULL
  AND t.performed_at >= (%(first)s::date::timestamp AT TIME ZONE c.tz) - interval '1 day'
  AND t.performed_at < ((%(last)s::date + 1)::timestamp AT TIME ZONE c.tz) + interval '1 day'
  AND (t.performed_at AT TIME ZONE c.tz)::date BETWEEN %(first)s::date AND %(last)s::date
GROUP BY t.patient_id
"""

PATIENTS_SQL: Final = """
SELECT id, mrn, display_name FROM patients WHERE id = ANY(%(ids)s) ORDER BY display_name, mrn
"""


def _params(clinic_id: str, month: Month, patient_id: UUID | None) -> dict[str, Any]:
    return {"clinic": clinic_id, "first": month.first_day, "last": month.last_day, "patient": patient_id}


def clinic_timezone(conn: psycopg.Connection[Any], clinic_id: str) -> str | None:
    """The clinic's IANA time zone; None when there is no such clinic."""
    row = fetch_one(conn, "SELECT timezone FROM clinics WHERE id = %s", (clinic_id,))
    return None if row is None else str(row["timezone"])


def month_periods(
    conn: psycopg.Connection[Any], clinic_id: str, month: Month, patient_id: UUID | None = None
) -> list[dict[str, Any]]:
    """Rows ``episode_id, patient_id, index, start, end, days, setup_earned_before``."""
    return fetch_all(conn, PERIODS_SQL, _params(clinic_id, month, patient_id))


def month_minutes(
    conn: psycopg.Connection[Any], clinic_id: str, month: Month, patient_id: UUID | None = None
) -> dict[UUID, tuple[int, bool]]:
    """The month's minutes and whether any entry was interactive, per patient with entries."""
    rows = fetch_all(conn, MINUTES_SQL, _params(clinic_id, month, patient_id))
    return {r["patient_id"]: (int(r["minutes"]), bool(r["interactive"])) for r in rows}


def patients(conn: psycopg.Connection[Any], ids: list[UUID]) -> list[dict[str, Any]]:
    """``id, mrn, display_name`` of the given patients, by name."""
    return fetch_all(conn, PATIENTS_SQL, {"ids": ids})


def explain_periods(conn: psycopg.Connection[Any], clinic_id: str, month: Month) -> list[str]:
    """The plan of the counting statement with its run time (for the benchmark)."""
    rows = conn.execute(
        "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) " + PERIODS_SQL,  # noqa: S608
        _params(clinic_id, month, None),
    ).fetchall()
    return [str(r[0]) for r in rows]

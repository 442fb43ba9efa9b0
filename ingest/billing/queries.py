"""The report's counting, in SQL: distinct clinic-local days with readings per 30-day period, and
the month's clinician minutes, for every patient of a clinic with an episode overlapping a month.

Nothing is loaded into Python but the result: one statement returns a row per (episode, period)
that overlaps the month with its day count, and one returns the minutes per patient. Days are
counted from ``reading_days`` (:mod:`ingest.billing.reading_days`: a row per patient and
clinic-local date with readings, written in the ingest transaction), a few rows per patient and
month instead of every reading; the readings themselves are asked only about an episode's first
day when that row cannot tell. The statements run under :func:`clinic_time`, which sets the
transaction's ``TimeZone`` to the clinic's IANA zone, so a plain ``timestamptz::date`` is the
clinic-local date, computed by PostgreSQL from the zone's rules for each instant (days across a
DST change are right), and ``date::timestamptz`` is the instant of local midnight. Dead letters
live in their own table and never reach ``reading_days``: only stored readings are counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final
from uuid import UUID

import psycopg

from ingest.billing.months import Month, validate_timezone
from ingest.db.rows import fetch_all, fetch_one

#: The month's episodes and their periods that overlap the month, each with its day count, and
#: per episode whether a period before the first of them already had readings on 2 days.
PERIODS_SQL: Final = """
WITH b AS (
    SELECT %(first)s::date AS m_first, %(last)s::date AS m_last,
           (%(first)s::date::timestamptz) - interval '1 day' AS m_from,
           ((%(last)s::date + 1)::timestamptz) + interval '1 day' AS m_to
), eps AS MATERIALIZED (
    SELECT e.id AS episode_id, e.patient_id, e.started_at, e.ended_at, b.m_first, b.m_last,
           (e.started_at)::date AS d1,
           ((e.ended_at - interval '1 microsecond'))::date AS d_last
    FROM monitoring_episodes e
    JOIN patients p ON p.id = e.patient_id
    CROSS JOIN b
    WHERE p.clinic_id = %(clinic)s
      AND (%(patient)s::uuid IS NULL OR p.id = %(patient)s::uuid)
      AND (e.ended_at IS NULL OR e.ended_at > e.started_at)
      AND e.started_at < b.m_to AND (e.ended_at IS NULL OR e.ended_at > b.m_from)
), periods AS MATERIALIZED (
    SELECT eps.*, k,
           eps.d1 + 30 * (k - 1) AS p_start,
           CASE WHEN eps.d_last IS NULL THEN eps.d1 + 30 * k - 1
                ELSE least(eps.d1 + 30 * k - 1, eps.d_last) END AS p_end
    FROM eps
    CROSS JOIN LATERAL generate_series(
        greatest(1, (eps.m_first - eps.d1) / 30 + 1), (eps.m_last - eps.d1) / 30 + 1) AS k
    WHERE eps.d_last IS NULL OR eps.d1 + 30 * (k - 1) <= eps.d_last
), listed AS (
    SELECT * FROM periods WHERE p_end >= m_first AND p_start <= m_last
), days AS (
    -- per episode and period, the clinic-local days with a stored reading inside the episode, from
    -- the days with readings (migration 0018). A day strictly between the episode's first and
    -- last date lies wholly inside it. On the last date, the day's first reading says whether one
    -- is before the end. On the first date, a reading of the day at or after the start
    -- (``last_at``, kept so whenever it matters) says one is inside; only when it cannot tell are
    -- the readings themselves asked (one index probe, for a day whose readings all came before
    -- the episode started, or an episode that starts and ends on one day)
    SELECT e.episode_id, (rd.local_date - e.d1) / 30 + 1 AS k, count(*) AS n
    FROM eps e
    JOIN reading_days rd ON rd.patient_id = e.patient_id
    WHERE rd.local_date BETWEEN (SELECT min(p_start) FROM listed) AND (SELECT max(p_end) FROM listed)
      AND rd.local_date >= e.d1 AND (e.d_last IS NULL OR rd.local_date <= e.d_last)
      AND (e.d_last IS NULL OR rd.local_date < e.d_last OR rd.first_at < e.ended_at)
      AND (rd.local_date > e.d1
           OR (rd.last_at >= e.started_at
               AND (e.d_last IS NULL OR rd.local_date < e.d_last OR rd.last_at < e.ended_at
                    OR rd.first_at >= e.started_at))
           OR EXISTS (SELECT 1 FROM readings r WHERE r.patient_id = e.patient_id
                      AND r.measured_at >= e.started_at
                      AND r.measured_at < least(e.ended_at, (e.d1 + 1)::timestamptz)))
    GROUP BY 1, 2
)
SELECT pr.episode_id, pr.patient_id, pr.k AS index, pr.p_start AS start, pr.p_end AS "end",
       coalesce(days.n, 0)::int AS days,
       (pr.k > 1 AND pr.k = min(pr.k) OVER (PARTITION BY pr.episode_id) AND EXISTS (
            SELECT 1 FROM reading_days rd
            WHERE rd.patient_id = pr.patient_id
              AND rd.local_date >= pr.d1 AND rd.local_date < pr.p_start
              AND (rd.local_date > pr.d1 OR rd.last_at >= pr.started_at OR EXISTS (
                   SELECT 1 FROM readings r WHERE r.patient_id = pr.patient_id
                     AND r.measured_at >= pr.started_at AND r.measured_at < (pr.d1 + 1)::timestamptz))
            GROUP BY (rd.local_date - pr.d1) / 30
            HAVING count(*) >= 2
       )) AS setup_earned_before
FROM listed pr
LEFT JOIN days ON days.episode_id = pr.episode_id AND days.k = pr.k
ORDER BY pr.patient_id, pr.episode_id, pr.k
"""

#: The month's clinician minutes per patient (entries not deleted, performed in the local month).
MINUTES_SQL: Final = """
SELECT t.patient_id, sum(t.minutes)::int AS minutes, bool_or(t.interactive) AS interactive
FROM clinician_time t
JOIN patients p ON p.id = t.patient_id
WHERE p.clinic_id = %(clinic)s
  AND (%(patient)s::uuid IS NULL OR p.id = %(patient)s::uuid)
  AND t.deleted_at IS NULL
  AND t.performed_at >= (%(first)s::date::timestamptz) - interval '1 day'
  AND t.performed_at < ((%(last)s::date + 1)::timestamptz) + interval '1 day'
  AND (t.performed_at)::date BETWEEN %(first)s::date AND %(last)s::date
GROUP BY t.patient_id
"""

PATIENTS_SQL: Final = """
SELECT id, mrn, display_name FROM patients WHERE id = ANY(%(ids)s) ORDER BY display_name, mrn
"""


def _params(clinic_id: str, month: Month, patient_id: UUID | None) -> dict[str, Any]:
    return {"clinic": clinic_id, "first": month.first_day, "last": month.last_day, "patient": patient_id}


#: Memory for the counting's sorts and hashes (one report at a time); the default 4 MB sent
#: 5,000 patients' month to disk when the counting read readings. JIT is off for the report's
#: transaction: the plan's estimated cost passes the JIT threshold, and compiling it took about
#: a second, longer than running it (bench/billing.py, docs/billing.md).
REPORT_WORK_MEM: Final = "64MB"


@contextmanager
def clinic_time(conn: psycopg.Connection[Any], timezone: str) -> Iterator[None]:
    """Within the block (one transaction), dates and local midnights are the clinic's."""
    zone = validate_timezone(timezone)
    with conn.transaction():
        conn.execute(
            "SELECT set_config('TimeZone', %s, true), set_config('work_mem', %s, true),"
            " set_config('jit', 'off', true)",
            (zone, REPORT_WORK_MEM),
        )
        yield


def clinic_timezone(conn: psycopg.Connection[Any], clinic_id: str) -> str | None:
    """The clinic's IANA time zone; None when there is no such clinic."""
    row = fetch_one(conn, "SELECT timezone FROM clinics WHERE id = %s", (clinic_id,))
    return None if row is None else str(row["timezone"])


def month_periods(
    conn: psycopg.Connection[Any],
    clinic_id: str,
    month: Month,
    patient_id: UUID | None = None,
) -> list[dict[str, Any]]:
    """Rows ``episode_id, patient_id, index, start, end, days, setup_earned_before``; run it under
    :func:`clinic_time` of the clinic's ``timezone``."""
    return fetch_all(conn, PERIODS_SQL, _params(clinic_id, month, patient_id))


def month_minutes(
    conn: psycopg.Connection[Any],
    clinic_id: str,
    month: Month,
    patient_id: UUID | None = None,
) -> dict[UUID, tuple[int, bool]]:
    """The month's minutes and whether any entry was interactive, per patient with entries (under
    :func:`clinic_time`)."""
    rows = fetch_all(conn, MINUTES_SQL, _params(clinic_id, month, patient_id))
    return {r["patient_id"]: (int(r["minutes"]), bool(r["interactive"])) for r in rows}


def patients(conn: psycopg.Connection[Any], ids: list[UUID]) -> list[dict[str, Any]]:
    """``id, mrn, display_name`` of the given patients, by name."""
    return fetch_all(conn, PATIENTS_SQL, {"ids": ids})


def explain_periods(conn: psycopg.Connection[Any], clinic_id: str, timezone: str, month: Month) -> list[str]:
    """The plan of the counting statement with its run time (for the benchmark)."""
    with clinic_time(conn, timezone):
        rows = conn.execute(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) " + PERIODS_SQL,  # noqa: S608
            _params(clinic_id, month, None),
        ).fetchall()
    return [str(r[0]) for r in rows]

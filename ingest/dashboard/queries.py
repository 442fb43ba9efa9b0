"""Read-only SQL behind the dashboard's summaries: latest vitals, days with readings, last contact.

Every query uses the ``readings (patient_id, metric, measured_at DESC)`` index: the latest value
is one index probe per (patient, metric), and "a reading on day D" is one ``EXISTS`` probe per day,
so the cost does not grow with the number of readings a patient sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Final
from uuid import UUID
from zoneinfo import ZoneInfo

import psycopg

from ingest.db.rows import fetch_all

COVERAGE_DAYS: Final = 30

_LATEST: Final = """
SELECT p.id AS patient_id, m.metric, r.value, r.unit, r.measured_at, r.device_id
FROM unnest(%(ids)s::uuid[]) AS p(id)
CROSS JOIN unnest(%(metrics)s::text[]) AS m(metric)
JOIN LATERAL (
    SELECT value, unit, measured_at, device_id FROM readings r
    WHERE r.patient_id = p.id AND r.metric = m.metric
    ORDER BY r.measured_at DESC LIMIT 1
) r ON true
ORDER BY p.id, m.metric
"""

_DAYS: Final = """
SELECT p.id AS patient_id, d.day, d.starts
FROM unnest(%(ids)s::uuid[]) AS p(id)
CROSS JOIN unnest(%(days)s::date[], %(starts)s::timestamptz[], %(ends)s::timestamptz[])
    AS d(day, starts, ends)
WHERE EXISTS (
    SELECT 1 FROM readings r
    WHERE r.patient_id = p.id AND r.metric = ANY(%(metrics)s::text[])
      AND r.measured_at >= d.starts AND r.measured_at < d.ends
) OR EXISTS (  -- an ECG strip is a reading too
    SELECT 1 FROM ecg_strips e
    WHERE e.patient_id = p.id AND e.measured_at >= d.starts AND e.measured_at < d.ends
)
ORDER BY p.id, d.day
"""


_DEVICES: Final = """
SELECT d.id, d.type, d.manufacturer, d.model, d.serial, d.battery_level, a.since AS assigned_since,
       seen.last_reading_at, seen.last_seen_at
FROM devices d
JOIN LATERAL (
    SELECT patient_id, since FROM device_assignments x
    WHERE x.device_id = d.id ORDER BY since DESC LIMIT 1
) a ON true
LEFT JOIN LATERAL (
    SELECT max(n.measured_at) AS last_reading_at, max(n.received_at) AS last_seen_at
    FROM (
        SELECT n.measured_at, n.received_at
        FROM unnest(%(metrics)s::text[]) AS m(metric)
        CROSS JOIN LATERAL (
            SELECT measured_at, received_at FROM readings r
            WHERE r.device_id = d.id AND r.metric = m.metric
            ORDER BY r.measured_at DESC LIMIT 1
        ) n
        UNION ALL
        (SELECT e.measured_at, e.received_at FROM ecg_strips e  -- an ECG recorder's strips
         WHERE e.device_id = d.id ORDER BY e.measured_at DESC LIMIT 1)
    ) n
) seen ON true
WHERE a.patient_id = %(patient)s
ORDER BY d.id
"""


@dataclass(frozen=True, slots=True)
class DayWindow:
    """The last ``COVERAGE_DAYS`` calendar days (today included) in one time zone."""

    days: tuple[date, ...]
    starts: tuple[datetime, ...]
    ends: tuple[datetime, ...]


def day_window(now: datetime, zone: ZoneInfo, count: int = COVERAGE_DAYS) -> DayWindow:
    """Calendar days ending today in ``zone``, with each day's [start, end) as aware datetimes.

    Midnights are computed in the zone itself, so a day with a DST change is 23 or 25 hours long.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    today = now.astimezone(zone).date()
    days = tuple(today - timedelta(days=n) for n in range(count - 1, -1, -1))
    starts = tuple(datetime.combine(d, time(0), tzinfo=zone) for d in days)
    ends = tuple(datetime.combine(d + timedelta(days=1), time(0), tzinfo=zone) for d in days)
    return DayWindow(days, starts, ends)


_LATEST_STRIPS: Final = """
SELECT patient_id, max(measured_at) AS measured_at FROM ecg_strips
WHERE patient_id = ANY(%(ids)s::uuid[])
GROUP BY patient_id
"""


def latest_strips(conn: psycopg.Connection[Any], patient_ids: Sequence[UUID]) -> dict[UUID, datetime]:
    """Per patient with ECG strips, when the newest was measured."""
    if not patient_ids:
        return {}
    rows = fetch_all(conn, _LATEST_STRIPS, {"ids": list(patient_ids)})
    return {row["patient_id"]: row["measured_at"] for row in rows}


def latest_values(
    conn: psycopg.Connection[Any], patient_ids: Sequence[UUID], metrics: Sequence[str]
) -> dict[UUID, list[dict[str, Any]]]:
    """Per patient, the newest reading of each metric it has (metric order)."""
    out: dict[UUID, list[dict[str, Any]]] = {p: [] for p in patient_ids}
    if not patient_ids:
        return out
    for row in fetch_all(conn, _LATEST, {"ids": list(patient_ids), "metrics": list(metrics)}):
        out[row.pop("patient_id")].append(row)
    return out


def days_with_readings(
    conn: psycopg.Connection[Any],
    patient_ids: Sequence[UUID],
    metrics: Sequence[str],
    window: DayWindow,
) -> dict[UUID, list[date]]:
    """Per patient, the days of ``window`` on which at least one reading was measured."""
    out: dict[UUID, list[date]] = {p: [] for p in patient_ids}
    if not patient_ids:
        return out
    with conn.cursor() as cur:
        cur.execute(
            _DAYS,
            {
                "ids": list(patient_ids),
                "metrics": list(metrics),
                "days": list(window.days),
                "starts": list(window.starts),
                "ends": list(window.ends),
            },
        )
        for patient_id, day, _ in cur:
            out[patient_id].append(day)
    return out


def open_alert_counts(
    conn: psycopg.Connection[Any], patient_ids: Sequence[UUID]
) -> dict[UUID, dict[str, int]]:
    """Per patient, alerts not yet resolved (open or acknowledged), by severity."""
    if not patient_ids:
        return {}
    out: dict[UUID, dict[str, int]] = {}
    with conn.cursor() as cur:
        cur.execute(
            "SELECT patient_id, severity, count(*) FROM alerts"
            " WHERE patient_id = ANY(%(ids)s::uuid[]) AND status <> 'resolved'"
            " GROUP BY 1, 2",
            {"ids": list(patient_ids)},
        )
        for patient_id, severity, count in cur:
            counts = out.setdefault(patient_id, {"critical": 0, "warning": 0, "total": 0})
            if severity in ("critical", "warning"):
                counts[severity] += count
            counts["total"] += count
    return out


def patient_devices(
    conn: psycopg.Connection[Any], patient_id: UUID, metrics: Sequence[str]
) -> list[dict[str, Any]]:
    """Devices currently assigned to the patient, with their newest reading (measured, received)."""
    return fetch_all(conn, _DEVICES, {"patient": patient_id, "metrics": list(metrics)})

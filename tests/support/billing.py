"""Billing test data: clinics in a time zone, patients with explicit episodes, stored readings at
clinic-local times and clinician time entries, written straight to a real database."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import psycopg

from ingest.billing.episodes import start_episode
from ingest.store import roster


def local(tz: str, y: int, mo: int, d: int, h: int = 12, mi: int = 0, s: int = 0) -> datetime:
    """The instant of a clinic-local wall-clock time (the earlier one when it occurs twice)."""
    return datetime(y, mo, d, h, mi, s, tzinfo=ZoneInfo(tz)).astimezone(UTC)


def clinic(conn: psycopg.Connection[Any], clinic_id: str, tz: str = "UTC") -> str:
    roster.create_clinic(conn, clinic_id, f"Clinic {clinic_id}", tz)
    return clinic_id


def patient(conn: psycopg.Connection[Any], clinic_id: str, mrn: str, name: str | None = None) -> UUID:
    row = roster.create_patient(
        conn, clinic_id=clinic_id, mrn=mrn, display_name=name or f"Patient {mrn}", fhir_patient_id=None
    )
    return UUID(str(row["id"]))


def monitored(conn: psycopg.Connection[Any], clinic_id: str, mrn: str, start: datetime) -> UUID:
    """A patient whose episode starts (explicitly) at ``start``."""
    pid = patient(conn, clinic_id, mrn)
    start_episode(conn, pid, start)
    return pid


def readings(
    conn: psycopg.Connection[Any], patient_id: UUID, instants: Iterable[datetime], device: str | None = None
) -> None:
    """Stored heart-rate readings of the patient, one per instant, and their days with readings."""
    dev = device or f"dev-{str(patient_id)[:8]}"
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO readings (device_id, metric, measured_at, patient_id, value, unit,"
            " original_value, original_unit) VALUES (%s, 'heart_rate', %s, %s, 70, '/min', 70, '/min')",
            [(dev, t, patient_id) for t in instants],
        )
    # the ingest hook's days with readings, for rows written past the ingest path
    conn.execute("SELECT billing_rebuild_reading_days(clinic_id) FROM patients WHERE id = %s", (patient_id,))


def daily(tz: str, first: date, days: int, per_day: int = 1, hour: int = 9) -> list[datetime]:
    """``per_day`` readings (a minute apart) on each of ``days`` consecutive local dates."""
    out: list[datetime] = []
    for n in range(days):
        d = date.fromordinal(first.toordinal() + n)
        out.extend(local(tz, d.year, d.month, d.day, hour, m) for m in range(per_day))
    return out


def time_entry(
    conn: psycopg.Connection[Any], patient_id: UUID, minutes: int, interactive: bool, at: datetime
) -> None:
    conn.execute(
        "INSERT INTO clinician_time (patient_id, minutes, interactive, performed_at, author_name)"
        " VALUES (%s, %s, %s, %s, 'tester')",
        (patient_id, minutes, interactive, at),
    )

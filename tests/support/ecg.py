"""Helpers for ECG strip tests: a registered cardiac patient, wire strips, what was stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from devices.ecg import strip_to_wire
from devices.ecg_synth import Rhythm, synthetic_strip
from ingest.store import roster

NOW = datetime.now(UTC).replace(microsecond=0)


def at(minutes_ago: float) -> datetime:
    return NOW - timedelta(minutes=minutes_ago)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def register_cardiac(
    conn: psycopg.Connection[Any], device_id: str, *, clinic_id: str = "default", mrn: str | None = None
) -> str:
    """A patient wearing ECG device ``device_id`` since a day ago; returns the patient id."""
    patient = roster.create_patient(
        conn,
        clinic_id=clinic_id,
        mrn=mrn or f"MRN-{device_id}",
        display_name="Cardiac Example",
        fhir_patient_id=None,
    )
    roster.create_device(
        conn,
        device_id=device_id,
        clinic_id=clinic_id,
        type_="ecg",
        manufacturer=None,
        model=None,
        serial=None,
    )
    roster.assign_device(conn, device_id=device_id, patient_id=patient["id"], since=NOW - timedelta(days=1))
    return str(patient["id"])


def wire_strip(
    device_id: str,
    minutes_ago: float,
    *,
    rhythm: Rhythm = "sinus",
    leads: tuple[str, ...] = ("I",),
    rate: int = 300,
    seconds: float = 10,
    seed: int = 1,
    **extra: Any,
) -> dict[str, Any]:
    """A synthetic strip as a reading object of the contract (samples in uV)."""
    strip = synthetic_strip(
        device_id,
        at(minutes_ago),
        rhythm=rhythm,
        leads=leads,
        sample_rate_hz=rate,
        duration_s=seconds,
        seed=seed,
    )
    wire = strip_to_wire(strip)
    del wire["device_id"]
    wire.update(extra)
    return wire


def stored_strips(conn: psycopg.Connection[Any]) -> list[tuple[str, datetime, list[str], int]]:
    rows = conn.execute(
        "SELECT device_id, measured_at, leads, sample_count FROM ecg_strips ORDER BY measured_at"
    ).fetchall()
    return [(r[0], r[1], list(r[2]), r[3]) for r in rows]


def dead_letter_rows(conn: psycopg.Connection[Any]) -> list[tuple[str, int | None, str]]:
    rows = conn.execute("SELECT source, reading_index, reason FROM dead_letters ORDER BY id").fetchall()
    return [(r[0], r[1], r[2]) for r in rows]

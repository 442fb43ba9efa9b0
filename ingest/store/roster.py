"""SQL for the registry: clinics, patients, devices and device-to-patient assignments."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.abc import Params

from ingest.db.rows import Query, fetch_all, fetch_one
from ingest.errors import Conflict, IngestError, NotFound

PATIENT_COLUMNS = (
    "id, clinic_id, mrn, display_name, fhir_patient_id, created_at,"
    " ehr_link_status, ehr_link_checked_at, ehr_link_detail"
)
DEVICE_COLUMNS = "id, clinic_id, type, manufacturer, model, serial, created_at, battery_level"


def _one_or(
    conn: psycopg.Connection[Any], query: Query, params: Params, error: IngestError
) -> dict[str, Any]:
    """The row the query returns; raises ``error`` when it returns none."""
    row = fetch_one(conn, query, params)
    if row is None:
        raise error
    return row


def _by_id(conn: psycopg.Connection[Any], table: str, columns: str, key: object, what: str) -> dict[str, Any]:
    """The row of ``table`` whose id is ``key``; NotFound naming ``what`` when there is none."""
    query = f"SELECT {columns} FROM {table} WHERE id = %s"
    return _one_or(conn, query, (key,), NotFound(f"{what} not found"))


CLINIC_COLUMNS = "id, name, timezone, observation_profile, created_at"


def create_clinic(
    conn: psycopg.Connection[Any], clinic_id: str, name: str, timezone: str = "UTC"
) -> dict[str, Any]:
    """``timezone``: an IANA name, checked by the caller (ingest.billing.months.validate_timezone)."""
    return _one_or(
        conn,
        "INSERT INTO clinics (id, name, timezone) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"
        f" RETURNING {CLINIC_COLUMNS}",
        (clinic_id, name, timezone),
        Conflict(f"clinic {clinic_id!r} already exists"),
    )


def update_clinic(
    conn: psycopg.Connection[Any],
    clinic_id: str,
    *,
    name: str | None,
    timezone: str | None,
    observation_profile: str | None = None,
) -> dict[str, Any]:
    """Change the name, the (already checked) time zone and/or the Observation profile; None
    keeps the current value."""
    return _one_or(
        conn,
        "UPDATE clinics SET name = coalesce(%s, name), timezone = coalesce(%s, timezone),"
        " observation_profile = coalesce(%s, observation_profile)"
        f" WHERE id = %s RETURNING {CLINIC_COLUMNS}",
        (name, timezone, observation_profile, clinic_id),
        NotFound(f"clinic {clinic_id!r} not found"),
    )


def get_clinic(conn: psycopg.Connection[Any], clinic_id: str) -> dict[str, Any]:
    return _by_id(conn, "clinics", CLINIC_COLUMNS, clinic_id, f"clinic {clinic_id!r}")


def list_clinics(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return fetch_all(conn, f"SELECT {CLINIC_COLUMNS} FROM clinics ORDER BY id")


def create_patient(
    conn: psycopg.Connection[Any],
    *,
    clinic_id: str,
    mrn: str,
    display_name: str,
    fhir_patient_id: str | None,
) -> dict[str, Any]:
    get_clinic(conn, clinic_id)
    return _one_or(
        conn,
        f"INSERT INTO patients (clinic_id, mrn, display_name, fhir_patient_id)"
        f" VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING {PATIENT_COLUMNS}",
        (clinic_id, mrn, display_name, fhir_patient_id),
        Conflict(f"a patient with this MRN already exists in clinic {clinic_id!r}"),
    )


def get_patient(conn: psycopg.Connection[Any], patient_id: UUID) -> dict[str, Any]:
    return _by_id(conn, "patients", PATIENT_COLUMNS, patient_id, f"patient {patient_id}")


def list_patients(
    conn: psycopg.Connection[Any], *, clinic_ids: list[str] | None, search: str | None, limit: int
) -> list[dict[str, Any]]:
    # A patient merged into another (HL7 ADT A40) is no longer listed: the survivor holds their
    # readings, devices and alerts. The record stays (GET /v1/patients/{id}) for the audit trail.
    return fetch_all(
        conn,
        f"SELECT {PATIENT_COLUMNS} FROM patients"
        " WHERE (%(clinics)s::text[] IS NULL OR clinic_id = ANY(%(clinics)s)) AND merged_into IS NULL"
        " AND (%(q)s::text IS NULL OR display_name ILIKE %(like)s OR mrn = %(q)s)"
        " ORDER BY display_name, id LIMIT %(limit)s",
        {
            "clinics": clinic_ids,
            "q": search,
            "like": None if search is None else f"%{_escape_like(search)}%",
            "limit": limit,
        },
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def create_device(
    conn: psycopg.Connection[Any],
    *,
    device_id: str,
    clinic_id: str,
    type_: str,
    manufacturer: str | None,
    model: str | None,
    serial: str | None,
) -> dict[str, Any]:
    get_clinic(conn, clinic_id)
    return _one_or(
        conn,
        f"INSERT INTO devices (id, clinic_id, type, manufacturer, model, serial)"
        f" VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING {DEVICE_COLUMNS}",
        (device_id, clinic_id, type_, manufacturer, model, serial),
        Conflict(f"device {device_id!r} is already registered"),
    )


def get_device(conn: psycopg.Connection[Any], device_id: str) -> dict[str, Any]:
    return _by_id(conn, "devices", DEVICE_COLUMNS, device_id, f"device {device_id!r}")


def device_clinic(conn: psycopg.Connection[Any], device_id: str) -> str | None:
    """The clinic a device is registered in; None when it is not registered."""
    row = conn.execute("SELECT clinic_id FROM devices WHERE id = %s", (device_id,)).fetchone()
    return None if row is None else str(row[0])


def assign_device(
    conn: psycopg.Connection[Any], *, device_id: str, patient_id: UUID | None, since: datetime
) -> dict[str, Any]:
    """Record that readings of ``device_id`` measured at or after ``since`` belong to the patient.

    ``patient_id`` None records an un-assignment. Re-sending the same ``since`` replaces it.
    """
    device = get_device(conn, device_id)
    if patient_id is not None:
        patient = get_patient(conn, patient_id)
        if patient["clinic_id"] != device["clinic_id"]:
            raise Conflict("device and patient belong to different clinics")
    row = fetch_one(
        conn,
        "INSERT INTO device_assignments (device_id, patient_id, since) VALUES (%s, %s, %s)"
        " ON CONFLICT (device_id, since) DO UPDATE SET patient_id = EXCLUDED.patient_id,"
        " created_at = now()"
        " RETURNING device_id, patient_id, since, created_at",
        (device_id, patient_id, since),
    )
    assert row is not None
    return row


def device_assignments(conn: psycopg.Connection[Any], device_id: str) -> list[dict[str, Any]]:
    return fetch_all(
        conn,
        "SELECT device_id, patient_id, since, created_at FROM device_assignments"
        " WHERE device_id = %s ORDER BY since",
        (device_id,),
    )


def patient_devices(conn: psycopg.Connection[Any], patient_id: UUID) -> list[dict[str, Any]]:
    """Devices currently assigned to the patient, with when each was last heard from."""
    return fetch_all(
        conn,
        f"SELECT {', '.join('d.' + c.strip() for c in DEVICE_COLUMNS.split(','))},"
        " a.since AS assigned_since,"
        " (SELECT max(r.received_at) FROM readings r WHERE r.device_id = d.id) AS last_seen_at"
        " FROM devices d JOIN LATERAL ("
        "   SELECT patient_id, since FROM device_assignments x WHERE x.device_id = d.id"
        "   ORDER BY since DESC LIMIT 1) a ON true"
        " WHERE a.patient_id = %s ORDER BY d.id",
        (patient_id,),
    )

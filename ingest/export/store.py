"""SQL for looking after the outbox: counts and failures, requeue, linking patients, upkeep."""

from __future__ import annotations

from typing import Any, Final
from uuid import UUID

import psycopg

from fhir_export.panels import LATE_KIND
from ingest.db.rows import fetch_all, fetch_one
from ingest.errors import Conflict, NotFound
from ingest.export.outbox import row_readings
from ingest.store.roster import PATIENT_COLUMNS

STATUSES: Final = ("pending", "waiting", "sent", "failed")
EXPORT_COLUMNS: Final = (
    "id, destination, item_ref, clinic_id, patient_id, device_id, export_key, kind, measured_at,"
    f" {row_readings()} AS readings, status, attempts,"
    " next_attempt_at, last_error, claimed_by, claimed_until, fhir_reference, created_in_ehr,"
    " created_at, updated_at, sent_at"
)
_CLINICS: Final = (
    "(%(clinics)s::text[] IS NULL OR clinic_id = ANY(%(clinics)s))"
    " AND (%(destination)s::text IS NULL OR destination = %(destination)s)"
)


def counts(
    conn: psycopg.Connection[Any], *, clinic_ids: list[str] | None, destination: str | None = None
) -> dict[str, int]:
    """Rows per status (every status present, zero when none).

    One count per status, so each can use its partial index instead of scanning every sent row.
    """
    query = " UNION ALL ".join(
        f"SELECT '{status}', count(*) FROM outbox WHERE status = '{status}' AND {_CLINICS}"
        for status in STATUSES
    )
    rows = conn.execute(query, {"clinics": clinic_ids, "destination": destination}).fetchall()
    return {str(status): int(n) for status, n in rows}


def list_exports(
    conn: psycopg.Connection[Any],
    *,
    status: str,
    clinic_ids: list[str] | None,
    limit: int,
    destination: str | None = None,
) -> list[dict[str, Any]]:
    """Rows in one status, most recently changed first."""
    return fetch_all(
        conn,
        f"SELECT {EXPORT_COLUMNS} FROM outbox WHERE status = %(status)s AND {_CLINICS}"
        " ORDER BY updated_at DESC, id DESC LIMIT %(limit)s",
        {"status": status, "clinics": clinic_ids, "limit": limit, "destination": destination},
    )


def waiting_patients(
    conn: psycopg.Connection[Any], *, clinic_ids: list[str] | None, limit: int, destination: str | None = None
) -> list[dict[str, Any]]:
    """Patients whose rows wait for a FHIR Patient id, with how many and since when."""
    return fetch_all(
        conn,
        "SELECT patient_id, count(*) AS rows, min(measured_at) AS oldest_measured_at"
        f" FROM outbox WHERE status = 'waiting' AND {_CLINICS}"
        " GROUP BY patient_id ORDER BY count(*) DESC, patient_id LIMIT %(limit)s",
        {"clinics": clinic_ids, "limit": limit, "destination": destination},
    )


def get_export(conn: psycopg.Connection[Any], export_id: int) -> dict[str, Any]:
    row = fetch_one(conn, f"SELECT {EXPORT_COLUMNS} FROM outbox WHERE id = %s", (export_id,))
    if row is None:
        raise NotFound(f"export {export_id} not found")
    return row


def requeue(conn: psycopg.Connection[Any], export_id: int) -> dict[str, Any]:
    """Send a failed (or deferred) row again now, with a fresh backoff.

    Sent rows, rows waiting for their patient's FHIR id and late panel components answer Conflict:
    sending them again cannot change anything.
    """
    row = fetch_one(conn, f"SELECT {EXPORT_COLUMNS} FROM outbox WHERE id = %s FOR UPDATE", (export_id,))
    if row is None:
        raise NotFound(f"export {export_id} not found")
    if row["kind"] == LATE_KIND:
        raise Conflict(
            "this blood-pressure component arrived after its panel was sent; conditional"
            " create cannot add it to the panel in the EHR"
        )
    if row["status"] == "sent":
        raise Conflict(f"export {export_id} was sent already")
    if row["status"] == "waiting":
        raise Conflict(
            f"export {export_id} waits for its patient's FHIR Patient id (PATCH /v1/patients/{{id}})"
        )
    updated = fetch_one(
        conn,
        "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = now(),"
        f" updated_at = now() WHERE id = %s RETURNING {EXPORT_COLUMNS}",
        (export_id,),
    )
    assert updated is not None
    return updated


def requeue_failed(
    conn: psycopg.Connection[Any],
    *,
    clinic_ids: list[str] | None,
    patient_id: UUID | None,
    destination: str | None = None,
) -> int:
    """Every failed row (of one patient, when given) goes out again now; late components stay."""
    return conn.execute(
        "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = now(),"
        f" updated_at = now() WHERE status = 'failed' AND kind <> '{LATE_KIND}'"
        f" AND (%(patient)s::uuid IS NULL OR patient_id = %(patient)s) AND {_CLINICS}",
        {"patient": patient_id, "clinics": clinic_ids, "destination": destination},
    ).rowcount


def patient_clinic(conn: psycopg.Connection[Any], patient_id: UUID) -> str:
    row = conn.execute("SELECT clinic_id FROM patients WHERE id = %s", (patient_id,)).fetchone()
    if row is None:
        raise NotFound(f"patient {patient_id} not found")
    return str(row[0])


def release_waiting(conn: psycopg.Connection[Any], patient_id: UUID) -> int:
    """The patient is linked to the EHR now: its waiting rows go out."""
    return conn.execute(
        "UPDATE outbox SET status = 'pending', last_error = NULL, next_attempt_at = now(),"
        " updated_at = now() WHERE patient_id = %s AND status = 'waiting'",
        (patient_id,),
    ).rowcount


def update_patient(
    conn: psycopg.Connection[Any],
    patient_id: UUID,
    *,
    display_name: str | None = None,
    fhir_patient_id: str | None = None,
    set_fhir_patient_id: bool = False,
) -> tuple[dict[str, Any], int]:
    """Change a patient's display name and/or FHIR Patient id; return it and the rows released.

    Setting the FHIR id releases the patient's waiting export rows in the same transaction (the
    outbox hook holds a share lock on the patient while it writes rows, so none can slip in as
    'waiting' after this). Clearing it makes rows wait again when a worker next claims them.
    """
    row = fetch_one(
        conn,
        "UPDATE patients SET display_name = coalesce(%(name)s, display_name),"
        " fhir_patient_id = CASE WHEN %(set_fhir)s THEN %(fhir)s ELSE fhir_patient_id END"
        f" WHERE id = %(id)s RETURNING {PATIENT_COLUMNS}",
        {
            "name": display_name,
            "set_fhir": set_fhir_patient_id,
            "fhir": fhir_patient_id,
            "id": patient_id,
        },
    )
    if row is None:
        raise NotFound(f"patient {patient_id} not found")
    released = release_waiting(conn, patient_id) if row["fhir_patient_id"] else 0
    return row, released


def release_linked(conn: psycopg.Connection[Any]) -> int:
    """Safety net: release waiting rows of patients linked by any other path."""
    return conn.execute(
        "UPDATE outbox o SET status = 'pending', last_error = NULL, next_attempt_at = now(),"
        " updated_at = now() FROM patients p"
        " WHERE o.status = 'waiting' AND p.id = o.patient_id AND p.fhir_patient_id IS NOT NULL"
    ).rowcount


def purge_sent(conn: psycopg.Connection[Any], *, keep_days: int, batch: int = 10_000) -> int:
    """Delete up to ``batch`` sent rows older than ``keep_days`` (the EHR holds them)."""
    return conn.execute(
        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE status = 'sent'"
        " AND sent_at < now() - make_interval(days => %s) ORDER BY sent_at LIMIT %s)",
        (keep_days, batch),
    ).rowcount


def queue_state(conn: psycopg.Connection[Any]) -> tuple[dict[str, int], float | None]:
    """Rows per status and the age in seconds of the oldest due pending row (for /metrics)."""
    found = counts(conn, clinic_ids=None)
    row = conn.execute(
        "SELECT extract(epoch FROM now() - min(next_attempt_at)) FROM outbox"
        " WHERE status = 'pending' AND next_attempt_at <= now()"
    ).fetchone()
    age = None if row is None or row[0] is None else float(row[0])
    return found, age

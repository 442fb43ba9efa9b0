"""SQL of the patient link: who is due for a look-up, what a look-up found, imported patients.

Look-ups run outside any transaction (the EHR may be slow): :func:`claim_due` marks the patients
it hands out as checked now, in a short transaction with ``SKIP LOCKED``, so processes beside this
one take others; :func:`record` then writes the answer. Linking sets ``fhir_patient_id`` and
releases the patient's waiting exports in the same transaction (``export_store.release_waiting``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from fhir_export.patients import LookupResult
from ingest.db.rows import fetch_all, fetch_one
from ingest.export import store as export_store
from ingest.store.roster import PATIENT_COLUMNS

MAX_DETAIL: Final = 500

_DUE: Final = """
WITH due AS (
    SELECT id FROM patients
    WHERE fhir_patient_id IS NULL
      AND (ehr_link_checked_at IS NULL
           OR (coalesce(ehr_link_status, 'pending') IN ('pending', 'not_found', 'error')
               AND ehr_link_checked_at <= now() - make_interval(secs => %(retry_s)s)))
    ORDER BY ehr_link_checked_at NULLS FIRST, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE patients p SET ehr_link_checked_at = now()
FROM due WHERE p.id = due.id
RETURNING p.id, p.clinic_id, p.mrn
"""


@dataclass(frozen=True, slots=True)
class DuePatient:
    id: UUID
    clinic_id: str
    mrn: str


def claim_due(conn: psycopg.Connection[Any], *, retry_s: float, limit: int) -> list[DuePatient]:
    """Unlinked patients never looked up, then those whose last answer is ``retry_s`` old."""
    rows = conn.execute(_DUE, {"retry_s": retry_s, "limit": limit}).fetchall()
    return [DuePatient(pid, clinic, mrn) for pid, clinic, mrn in rows]


def patient_for_lookup(conn: psycopg.Connection[Any], patient_id: UUID) -> DuePatient | None:
    row = conn.execute("SELECT id, clinic_id, mrn FROM patients WHERE id = %s", (patient_id,)).fetchone()
    return None if row is None else DuePatient(row[0], row[1], row[2])


def record(conn: psycopg.Connection[Any], patient_id: UUID, result: LookupResult) -> dict[str, Any] | None:
    """Keep what the look-up found; link the patient (and release its exports) when it found
    one Patient. A patient linked meanwhile by another path keeps its link. Returns the row."""
    row = fetch_one(
        conn,
        "UPDATE patients SET ehr_link_status = %(status)s, ehr_link_detail = %(detail)s,"
        " ehr_link_checked_at = now(),"
        " fhir_patient_id = coalesce(fhir_patient_id, %(fhir)s)"
        f" WHERE id = %(id)s RETURNING {PATIENT_COLUMNS}",
        {
            "status": result.status,
            "detail": result.detail[:MAX_DETAIL],
            "fhir": result.fhir_patient_id,
            "id": patient_id,
        },
    )
    if row is not None and row["fhir_patient_id"] is not None:
        export_store.release_waiting(conn, patient_id)
    return row


@dataclass(frozen=True, slots=True)
class Imported:
    """One member of an imported Group, ready to register: MRN, name and EHR Patient id."""

    reference: str
    mrn: str
    display_name: str
    fhir_id: str


@dataclass
class ImportCounts:
    created: int = 0
    updated: int = 0
    conflicts: list[tuple[str, str]] | None = None


_UPSERT: Final = """
WITH v AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb)
        AS v(reference text, mrn text, display_name text, fhir_id text)
), ins AS (
    INSERT INTO patients (clinic_id, mrn, display_name, fhir_patient_id, ehr_link_status,
                          ehr_link_checked_at, ehr_link_detail)
    SELECT %(clinic)s, v.mrn, v.display_name, v.fhir_id, 'linked', now(), %(detail)s FROM v
    ON CONFLICT (clinic_id, mrn) DO UPDATE
        SET display_name = EXCLUDED.display_name,
            fhir_patient_id = EXCLUDED.fhir_patient_id,
            ehr_link_status = 'linked', ehr_link_checked_at = now(),
            ehr_link_detail = EXCLUDED.ehr_link_detail
        WHERE patients.fhir_patient_id IS NULL OR patients.fhir_patient_id = EXCLUDED.fhir_patient_id
    RETURNING id, mrn, (xmax = 0) AS created
)
SELECT v.reference, ins.id, ins.created, p.fhir_patient_id AS linked_to
FROM v LEFT JOIN ins ON ins.mrn = v.mrn
LEFT JOIN patients p ON ins.id IS NULL AND p.clinic_id = %(clinic)s AND p.mrn = v.mrn
"""


def upsert_imported(
    conn: psycopg.Connection[Any], clinic_id: str, members: Sequence[Imported], detail: str
) -> ImportCounts:
    """Register the members (or update the patients with their MRNs), linked, and release the
    waiting exports of those newly linked. A patient already linked to another EHR Patient is
    left as it is and reported back as a conflict."""
    counts = ImportCounts(conflicts=[])
    if not members:
        return counts
    rows = Jsonb([{"reference": m.reference, "mrn": m.mrn, "display_name": m.display_name,
                   "fhir_id": m.fhir_id} for m in members])  # fmt: skip
    found = fetch_all(conn, _UPSERT, {"rows": rows, "clinic": clinic_id, "detail": detail[:MAX_DETAIL]})
    updated: list[UUID] = []
    assert counts.conflicts is not None
    for row in found:
        if row["id"] is None:
            counts.conflicts.append(
                (row["reference"], f"the patient with this MRN is linked to Patient/{row['linked_to']}")
            )
        elif row["created"]:
            counts.created += 1
        else:
            counts.updated += 1
            updated.append(row["id"])
    if updated:
        conn.execute(
            "UPDATE outbox SET status = 'pending', last_error = NULL, next_attempt_at = now(),"
            " updated_at = now() WHERE patient_id = ANY(%s) AND status = 'waiting'",
            (updated,),
        )
    return counts


def clinic_exists(conn: psycopg.Connection[Any], clinic_id: str) -> bool:
    return conn.execute("SELECT 1 FROM clinics WHERE id = %s", (clinic_id,)).fetchone() is not None


def link_state(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Unlinked patients per last look-up status (for the dashboard and /metrics)."""
    rows = conn.execute(
        "SELECT coalesce(ehr_link_status, 'pending'), count(*) FROM patients"
        " WHERE fhir_patient_id IS NULL GROUP BY 1"
    ).fetchall()
    return {str(status): int(n) for status, n in rows}


def checked_since(conn: psycopg.Connection[Any], patient_id: UUID, since: datetime) -> bool:
    row = conn.execute(
        "SELECT ehr_link_checked_at >= %s FROM patients WHERE id = %s", (since, patient_id)
    ).fetchone()
    return bool(row and row[0])

"""What the ORU^R01 sender makes of a claimed outbox row (called inside the claim's transaction),
and the check that keeps each patient's results in the order they were stored.

A row is *held* while an older ``hl7`` row of the same patient is still pending outside the batch
in hand (waiting for its retry, or claimed by another sender): it goes after that one. The check is
one query per batch (:func:`held_rows`), not one per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import psycopg

from hl7_export import OruItem, PatientRef, control_id
from ingest.export.destinations import HL7
from ingest.export.outbox.claims import ClaimedRow

HELD_REASON: Final = "held behind an older message of the same patient that has not been delivered yet"

_OLDEST_PENDING_ELSEWHERE: Final = """
SELECT patient_id, min(id), extract(epoch FROM max(next_attempt_at) - now())::float8 FROM outbox
WHERE destination = %(destination)s AND status = 'pending'
  AND patient_id = ANY(%(patients)s) AND NOT (id = ANY(%(ids)s))
GROUP BY patient_id
"""


@dataclass(frozen=True, slots=True)
class Hl7Item:
    control_id: str  # MSH-10, the same on every attempt
    clinic_id: str
    patient_id: UUID
    oru: OruItem


def hl7_reader(conn: psycopg.Connection[Any], row: ClaimedRow) -> Hl7Item:
    if not row.readings:
        raise ValueError(f"the HL7 export sends readings; a row of kind {row.kind!r} has none")
    oru = OruItem(row.readings, PatientRef(row.patient.mrn, row.patient.display_name), row.device)
    msh10 = control_id(row.device_id, row.export_key, row.measured_at)
    return Hl7Item(msh10, row.clinic_id, row.patient_id, oru)


def held_rows(conn: psycopg.Connection[Any], batch: Sequence[tuple[int, UUID]]) -> dict[int, float]:
    """The ids among ``batch`` (row id, patient) that must wait, each with how long: an older
    pending row of their patient is not in the batch, and is due in that many seconds (0: now, or
    it is another sender's)."""
    if not batch:
        return {}
    params = {
        "destination": HL7,
        "patients": list({patient for _, patient in batch}),
        "ids": [row_id for row_id, _ in batch],
    }
    oldest = {
        patient: (first, due_in) for patient, first, due_in in conn.execute(_OLDEST_PENDING_ELSEWHERE, params)
    }
    return {
        row_id: max(0.0, oldest[patient][1])
        for row_id, patient in batch
        if patient in oldest and oldest[patient][0] < row_id
    }

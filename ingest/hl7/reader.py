"""What the ORU^R01 sender makes of a claimed outbox row (called inside the claim's transaction).

Each patient's results reach the receiver in the order they were stored: a row is *held* while an
older ``hl7`` row of the same patient is still pending outside this claim (waiting for its retry,
or claimed by another sender), and goes after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import psycopg

from hl7_export import DeviceRef, OruItem, PatientRef, control_id
from ingest.export.destinations import HL7
from ingest.export.outbox.claims import ClaimedRow

HELD_REASON: Final = "held behind an older message of the same patient that has not been delivered yet"

_OLDER_PENDING: Final = """
SELECT EXISTS (
    SELECT 1 FROM outbox e
    WHERE e.destination = %(destination)s AND e.status = 'pending'
      AND e.patient_id = %(patient)s AND e.id < %(id)s
      AND e.claim_token IS DISTINCT FROM (SELECT claim_token FROM outbox WHERE id = %(id)s)
)
"""


@dataclass(frozen=True, slots=True)
class Hl7Item:
    control_id: str  # MSH-10, the same on every attempt
    clinic_id: str
    patient_id: UUID
    oru: OruItem


@dataclass(frozen=True, slots=True)
class Held:
    """A row that must wait for an older row of its patient."""

    patient_id: UUID


def hl7_reader(conn: psycopg.Connection[Any], row: ClaimedRow) -> Hl7Item | Held:
    if not row.readings:
        raise ValueError(f"the HL7 export sends readings; a row of kind {row.kind!r} has none")
    params = {"destination": HL7, "patient": row.patient_id, "id": row.id}
    older = conn.execute(_OLDER_PENDING, params).fetchone()
    if older is not None and older[0]:
        return Held(row.patient_id)
    device = row.device
    oru = OruItem(
        row.readings,
        PatientRef(row.patient.mrn, row.patient.display_name),
        DeviceRef(device.device_id, device.type, device.manufacturer, device.model, device.serial),
    )
    return Hl7Item(
        control_id(row.device_id, row.export_key, row.measured_at), row.clinic_id, row.patient_id, oru
    )

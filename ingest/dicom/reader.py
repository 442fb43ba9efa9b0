"""What a claimed ``dicom`` outbox row becomes: the stored strip, its patient and its clinic.

Runs inside the claim's transaction (:class:`ingest.export.outbox.PgOutbox`). A row that names no
strip, a strip that is gone, or a clinic whose time zone is unknown raises ``ValueError`` or
``KeyError``: the outbox parks the row with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from zoneinfo import ZoneInfo

import psycopg

from devices.ecg import EcgStrip
from dicom_export.models import ClinicRef, PatientRef
from ingest.db.rows import fetch_one
from ingest.ecg.store import strip_for_export
from ingest.export.outbox.claims import ClaimedRow

KIND: Final = "ecg"
_CLINIC: Final = "SELECT name, timezone FROM clinics WHERE id = %s"


@dataclass(frozen=True, slots=True)
class DicomJob:
    strip: EcgStrip
    patient: PatientRef
    clinic: ClinicRef


def dicom_reader(conn: psycopg.Connection[Any], row: ClaimedRow) -> DicomJob:
    if row.kind != KIND:
        raise ValueError(f"the DICOM export sends ECG strips, not outbox rows of kind {row.kind!r}")
    strip = strip_for_export(conn, row.item_ref)
    clinic = fetch_one(conn, _CLINIC, (row.clinic_id,))
    if clinic is None:
        raise KeyError(f"clinic {row.clinic_id!r} is not stored")
    patient = PatientRef(id=str(row.patient_id), mrn=row.patient.mrn, name=row.patient.display_name)
    # ZoneInfoNotFoundError is a KeyError: an unknown zone parks the row with its name.
    return DicomJob(strip, patient, ClinicRef(row.clinic_id, clinic["name"], ZoneInfo(clinic["timezone"])))

"""FHIR export status: counts, failures with their reasons, patients waiting for a FHIR id, requeue.

Staff only; a clinician sees the rows of their own clinic, an administrator every clinic (or one,
with ``?clinic=``). Another clinic's row answers 404 as if it did not exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field

from ingest.api.deps import ServicesDep, StaffDep, ensure_clinic_visible
from ingest.api.schemas import ClinicId
from ingest.export import store
from ingest.export.context import ExportDep
from ingest.export.outbox import WAITING_REASON
from ingest.store.tokens import Principal

router = APIRouter(prefix="/v1/exports", tags=["exports"])

MAX_ID: Final = 2**63 - 1
ExportId = Annotated[int, Path(ge=1, le=MAX_ID, description="outbox row id")]


class ExportCounts(BaseModel):
    pending: int = Field(description="to be sent (due now or after a retry delay)")
    waiting: int = Field(description="held until the patient has a FHIR Patient id")
    sent: int = Field(description="in the EHR (rows kept RPM_FHIR_KEEP_SENT_DAYS days)")
    failed: int = Field(description="refused for good; see failures, requeue with POST .../retry")


DestinationName = Annotated[
    str, Query(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="one destination only: fhir, hl7, dicom")
]


class ExportPublic(BaseModel):
    id: int
    destination: str = Field(description="where the row goes: fhir (the EHR's FHIR API), hl7, dicom")
    status: str
    kind: str = Field(description="reading, bp_panel, late_component, ecg or flag")
    item_ref: str | None = Field(description="the exported item's id (an ECG strip, an alert)")
    metric: str = Field(description="metric name, bp_panel, or late:<metric>")
    metrics: list[str] = Field(description="the metrics this row exports")
    patient_id: UUID
    device_id: str
    measured_at: datetime
    attempts: int
    reason: str | None = Field(description="last error, or why the row waits or failed")
    next_attempt_at: datetime
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    fhir_reference: str | None = Field(
        description="once sent: Observation/<id> or Flag/<id> in the EHR (fhir); for other destinations"
        " their reference (the HL7 message control id, the DICOM SOP Instance UID)"
    )
    created_in_ehr: bool | None = Field(description="false when a retry found it already at the destination")


class WaitingPatient(BaseModel):
    patient_id: UUID
    rows: int
    oldest_measured_at: datetime
    reason: str


class ExportsSummary(BaseModel):
    enabled: bool = Field(description="false: no RPM_FHIR_BASE_URL, rows wait until one is set")
    counts: ExportCounts
    failures: list[ExportPublic]
    waiting: list[WaitingPatient]


def export_public(row: dict[str, Any]) -> ExportPublic:
    return ExportPublic(
        id=row["id"],
        destination=row["destination"],
        status=row["status"],
        kind=row["kind"],
        item_ref=row["item_ref"],
        metric=row["export_key"],
        metrics=sorted(row["readings"]) if isinstance(row["readings"], dict) else [],
        patient_id=row["patient_id"],
        device_id=row["device_id"],
        measured_at=row["measured_at"],
        attempts=row["attempts"],
        reason=row["last_error"],
        next_attempt_at=row["next_attempt_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        sent_at=row["sent_at"],
        fhir_reference=row["fhir_reference"],
        created_in_ehr=row["created_in_ehr"],
    )


def _clinics(principal: Principal, clinic: str | None) -> list[str] | None:
    if principal.is_admin:
        return None if clinic is None else [clinic]
    own = principal.clinic_id or ""
    if clinic is not None and clinic != own:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"no access to clinic {clinic!r}")
    return [own]


@router.get("", response_model=ExportsSummary, summary="Export counts, failures and waiting patients")
def get_exports(
    services: ServicesDep,
    principal: StaffDep,
    ctx: ExportDep,
    clinic: Annotated[ClinicId | None, Query(description="administrators: one clinic only")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="failures and waiting patients listed")] = 100,
    destination: DestinationName | None = None,
) -> ExportsSummary:
    clinics = _clinics(principal, clinic)
    with services.transaction() as conn:
        counts = store.counts(conn, clinic_ids=clinics, destination=destination)
        failures = store.list_exports(
            conn, status="failed", clinic_ids=clinics, limit=limit, destination=destination
        )
        waiting = store.waiting_patients(conn, clinic_ids=clinics, limit=limit, destination=destination)
    return ExportsSummary(
        enabled=ctx is not None and ctx.enabled,
        counts=ExportCounts(**counts),
        failures=[export_public(r) for r in failures],
        waiting=[WaitingPatient(**w, reason=WAITING_REASON) for w in waiting],
    )


@router.get("/rows", response_model=list[ExportPublic], summary="Export rows in one status")
def list_rows(
    services: ServicesDep,
    principal: StaffDep,
    status_: Annotated[Literal["pending", "waiting", "sent", "failed"], Query(alias="status")] = "failed",
    clinic: Annotated[ClinicId | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    destination: DestinationName | None = None,
) -> list[ExportPublic]:
    clinics = _clinics(principal, clinic)
    with services.transaction() as conn:
        rows = store.list_exports(
            conn, status=status_, clinic_ids=clinics, limit=limit, destination=destination
        )
    return [export_public(r) for r in rows]


class RetryFailed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient_id: UUID | None = Field(default=None, description="only this patient's failed exports")
    clinic: ClinicId | None = Field(default=None, description="administrators: one clinic only")


class Requeued(BaseModel):
    requeued: int


@router.post(
    "/retry-failed",
    response_model=Requeued,
    summary="Send every failed export (of a clinic or a patient) again now",
)
def retry_failed(body: RetryFailed, services: ServicesDep, principal: StaffDep) -> Requeued:
    clinics = _clinics(principal, body.clinic)
    with services.transaction() as conn:
        if body.patient_id is not None:
            patient = store.patient_clinic(conn, body.patient_id)
            if clinics is not None and patient not in clinics:
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"patient {body.patient_id} not found")
        count = store.requeue_failed(conn, clinic_ids=clinics, patient_id=body.patient_id)
    return Requeued(requeued=count)


@router.get("/{export_id}", response_model=ExportPublic)
def get_export(export_id: ExportId, services: ServicesDep, principal: StaffDep) -> ExportPublic:
    with services.transaction() as conn:
        row = store.get_export(conn, export_id)
    ensure_clinic_visible(principal, row["clinic_id"], f"export {export_id}")
    return export_public(row)


@router.post(
    "/{export_id}/retry",
    response_model=ExportPublic,
    summary="Send a failed (or deferred) export again now",
    responses={
        409: {
            "description": "sent already, waiting for the patient's FHIR id, or a late"
            " blood-pressure component"
        }
    },  # fmt: skip
)
def retry_export(export_id: ExportId, services: ServicesDep, principal: StaffDep) -> ExportPublic:
    with services.transaction() as conn:
        row = store.get_export(conn, export_id)
        ensure_clinic_visible(principal, row["clinic_id"], f"export {export_id}")
        updated = store.requeue(conn, export_id)
    return export_public(updated)

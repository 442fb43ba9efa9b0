"""``POST /v1/patients/{id}/ehr-link`` (look the patient up in the EHR now) and
``POST /v1/patients/import`` (register the members of an EHR Group), contract ehr-interop.md §1."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from ingest.api.deps import AdminDep, ServicesDep, StaffDep, visible_patient
from ingest.api.schemas import ClinicId, FhirId, PatientPublic, patient_public
from ingest.ehr import store
from ingest.ehr.context import EhrDep
from ingest.ehr.importer import ImportRefused

router = APIRouter(prefix="/v1/patients", tags=["patients"])


class ImportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    group: FhirId = Field(description="the Group's id in the EHR")
    clinic: ClinicId | None = Field(
        default=None, description="defaults to the caller's clinic, else 'default'"
    )


class Skipped(BaseModel):
    reference: str
    reason: str


class ImportPublic(BaseModel):
    created: int
    updated: int
    skipped: list[Skipped]
    skipped_total: Annotated[int, Field(description="all skipped members; 'skipped' lists the first 1000")]


@router.post(
    "/import",
    response_model=ImportPublic,
    summary="Register (or update) the members of an EHR Group, linked to their EHR Patients",
)
def import_group(
    body: ImportRequest, services: ServicesDep, principal: AdminDep, ctx: EhrDep
) -> ImportPublic:
    if ctx.importer is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "no EHR to import from: set RPM_FHIR_BASE_URL and RPM_FHIR_PATIENT_IDENTIFIER_SYSTEM",
        )
    clinic = body.clinic or principal.clinic_id or "default"
    with services.transaction() as conn:
        if not store.clinic_exists(conn, clinic):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"clinic {clinic!r} not found")
    try:
        result = ctx.importer.run(body.group, clinic)
    except ImportRefused as exc:
        raise HTTPException(exc.status, exc.reason) from None
    return ImportPublic(
        created=result.created,
        updated=result.updated,
        skipped=[Skipped(**s) for s in result.skipped],
        skipped_total=result.skipped_total,
    )


@router.post(
    "/{patient_id}/ehr-link",
    response_model=PatientPublic,
    summary="Look the patient up in the EHR by MRN now",
)
def link_patient(patient_id: UUID, services: ServicesDep, principal: StaffDep, ctx: EhrDep) -> PatientPublic:
    row = visible_patient(services, principal, patient_id)
    if row["fhir_patient_id"] is not None:
        return patient_public(row)
    found = ctx.linker.link_now(patient_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"patient {patient_id} not found")
    return patient_public(found)

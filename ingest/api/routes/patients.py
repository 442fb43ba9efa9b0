from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict

from ingest.api.deps import ServicesDep, StaffDep, visible_patient
from ingest.api.schemas import (
    Bucket,
    BucketsPage,
    DevicePublic,
    FhirId,
    PatientCreate,
    PatientPublic,
    ReadingPublic,
    ReadingsPage,
    Text200,
    patient_public,
)
from ingest.export import store as export_store
from ingest.store import readings as readings_store
from ingest.store import roster

router = APIRouter(prefix="/v1/patients", tags=["patients"])

MAX_READINGS_PER_QUERY = 50_000


@router.post("", status_code=status.HTTP_201_CREATED, response_model=PatientPublic)
def create_patient(body: PatientCreate, services: ServicesDep, principal: StaffDep) -> PatientPublic:
    if not principal.can_see_clinic(body.clinic):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"no access to clinic {body.clinic!r}")
    with services.transaction() as conn:
        row = roster.create_patient(
            conn,
            clinic_id=body.clinic,
            mrn=body.mrn,
            display_name=body.display_name,
            fhir_patient_id=body.fhir_patient_id,
        )
    return patient_public(row)


@router.get("", response_model=list[PatientPublic])
def list_patients(
    services: ServicesDep,
    principal: StaffDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[PatientPublic]:
    clinics = None if principal.is_admin else [principal.clinic_id or ""]
    with services.transaction() as conn:
        rows = roster.list_patients(conn, clinic_ids=clinics, search=q, limit=limit)
    return [patient_public(r) for r in rows]


@router.get("/{patient_id}", response_model=PatientPublic)
def get_patient(patient_id: UUID, services: ServicesDep, principal: StaffDep) -> PatientPublic:
    return patient_public(visible_patient(services, principal, patient_id))


class PatientUpdate(BaseModel):
    """``PATCH /v1/patients/{id}``: the fields to change (``fhir_patient_id`` null unlinks)."""

    model_config = ConfigDict(extra="forbid")
    display_name: Text200 | None = None
    fhir_patient_id: FhirId | None = None


@router.patch("/{patient_id}", response_model=PatientPublic)
def update_patient(
    patient_id: UUID, body: PatientUpdate, services: ServicesDep, principal: StaffDep
) -> PatientPublic:
    """Rename a patient or link them to the EHR; linking releases their waiting FHIR exports."""
    fields = body.model_fields_set
    if not fields:
        raise HTTPException(422, "nothing to change: give display_name and/or fhir_patient_id")
    if "display_name" in fields and body.display_name is None:
        raise HTTPException(422, "display_name cannot be null")
    visible_patient(services, principal, patient_id)
    with services.transaction() as conn:
        row, _ = export_store.update_patient(
            conn,
            patient_id,
            display_name=body.display_name,
            fhir_patient_id=body.fhir_patient_id,
            set_fhir_patient_id="fhir_patient_id" in fields,
        )
    return patient_public(row)


@router.get("/{patient_id}/devices", response_model=list[DevicePublic])
def get_patient_devices(
    patient_id: UUID, services: ServicesDep, principal: StaffDep
) -> list[dict[str, Any]]:
    visible_patient(services, principal, patient_id)
    with services.transaction() as conn:
        rows = roster.patient_devices(conn, patient_id)
    return [{**r, "clinic": r["clinic_id"]} for r in rows]


@router.get(
    "/{patient_id}/readings",
    response_model=ReadingsPage | BucketsPage,
    summary="A patient's readings, raw or aggregated in time buckets",
)
def get_readings(
    patient_id: UUID,
    services: ServicesDep,
    principal: StaffDep,
    metric: Annotated[
        list[str] | None, Query(description="metric name(s); repeat or comma-separate; all if absent")
    ] = None,
    since: Annotated[datetime | None, Query(description="RFC 3339; default 24 h ago")] = None,
    until: Annotated[datetime | None, Query(description="RFC 3339, exclusive; default now")] = None,
    bucket: Annotated[str | None, Query(description="bucket width such as 15m, 1h, 1d")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_READINGS_PER_QUERY)] = 10_000,
) -> ReadingsPage | BucketsPage:
    visible_patient(services, principal, patient_id)
    catalogue = services.pipeline.catalogue
    names = [n.strip() for m in metric or [] for n in m.split(",") if n.strip()] or list(catalogue)
    unknown = [n for n in names if n not in catalogue]
    if unknown:
        raise HTTPException(422, f"unknown metric(s): {', '.join(sorted(unknown))[:200]}")
    now = datetime.now(UTC)
    until_ = _aware(until, "until") or now
    since_ = _aware(since, "since") or until_ - timedelta(hours=24)
    if since_ >= until_:
        raise HTTPException(422, "since must be before until")
    with services.transaction() as conn:
        if bucket is None:
            rows = readings_store.query_readings(
                conn, patient_id=patient_id, metrics=names, since=since_, until=until_, limit=limit
            )
            return ReadingsPage(readings=[ReadingPublic(**r) for r in rows])
        try:
            width = readings_store.parse_bucket(bucket)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        if (until_ - since_) / width > MAX_READINGS_PER_QUERY:
            raise HTTPException(422, "too many buckets: widen the bucket or narrow the range")
        rows = readings_store.query_buckets(
            conn, patient_id=patient_id, metrics=names, since=since_, until=until_, width=width
        )
    return BucketsPage(buckets=[Bucket(**r) for r in rows])


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise HTTPException(422, f"{name} needs a time zone offset (e.g. Z)")
    return value

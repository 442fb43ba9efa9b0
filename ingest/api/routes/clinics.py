from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from ingest.api.deps import AdminDep, ServicesDep, StaffDep
from ingest.api.schemas import ClinicCreate, ClinicPublic, ClinicUpdate
from ingest.billing.errors import InvalidTimeZone
from ingest.billing.months import validate_timezone
from ingest.store import roster

router = APIRouter(prefix="/v1/clinics", tags=["clinics"])


def _timezone(name: str) -> str:
    try:
        return validate_timezone(name)
    except InvalidTimeZone as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ClinicPublic)
def create_clinic(body: ClinicCreate, services: ServicesDep, _: AdminDep) -> ClinicPublic:
    timezone = _timezone(body.timezone)
    with services.transaction() as conn:
        row = roster.create_clinic(conn, body.id, body.name, timezone)
    return ClinicPublic(**row)


@router.patch("/{clinic_id}", response_model=ClinicPublic)
def update_clinic(clinic_id: str, body: ClinicUpdate, services: ServicesDep, _: AdminDep) -> ClinicPublic:
    """Rename a clinic, change its time zone (billing counts days in the time zone at report
    time, so a change applies to every month reported after it) or the Observation profiles its
    EHR expects (Observations sent from then on follow them)."""
    if body.name is None and body.timezone is None and body.observation_profile is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "nothing to change: give name, timezone and/or observation_profile",
        )
    timezone = None if body.timezone is None else _timezone(body.timezone)
    with services.transaction() as conn:
        row = roster.update_clinic(
            conn, clinic_id, name=body.name, timezone=timezone, observation_profile=body.observation_profile
        )
    return ClinicPublic(**row)


@router.get("", response_model=list[ClinicPublic])
def list_clinics(services: ServicesDep, principal: StaffDep) -> list[ClinicPublic]:
    with services.transaction() as conn:
        rows = roster.list_clinics(conn)
    return [ClinicPublic(**r) for r in rows if principal.can_see_clinic(r["id"])]

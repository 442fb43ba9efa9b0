from __future__ import annotations

from fastapi import APIRouter, status

from ingest.api.deps import AdminDep, ServicesDep, StaffDep
from ingest.api.schemas import ClinicCreate, ClinicPublic
from ingest.store import roster

router = APIRouter(prefix="/v1/clinics", tags=["clinics"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ClinicPublic)
def create_clinic(body: ClinicCreate, services: ServicesDep, _: AdminDep) -> ClinicPublic:
    with services.transaction() as conn:
        row = roster.create_clinic(conn, body.id, body.name)
    return ClinicPublic(**row)


@router.get("", response_model=list[ClinicPublic])
def list_clinics(services: ServicesDep, principal: StaffDep) -> list[ClinicPublic]:
    with services.transaction() as conn:
        rows = roster.list_clinics(conn)
    return [ClinicPublic(**r) for r in rows if principal.can_see_clinic(r["id"])]

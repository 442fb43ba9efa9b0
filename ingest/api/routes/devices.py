from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status

from ingest.api.deps import ServicesDep, StaffDep, ensure_clinic_visible
from ingest.api.schemas import AssignmentIn, AssignmentPublic, DeviceCreate, DevicePublic
from ingest.store import roster

router = APIRouter(prefix="/v1/devices", tags=["devices"])


def device_public(row: dict[str, Any]) -> DevicePublic:
    return DevicePublic(clinic=row["clinic_id"], **{k: v for k, v in row.items() if k != "clinic_id"})


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DevicePublic)
def create_device(body: DeviceCreate, services: ServicesDep, principal: StaffDep) -> DevicePublic:
    clinic = body.clinic or principal.clinic_id or "default"
    if not principal.can_see_clinic(clinic):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"no access to clinic {clinic!r}")
    with services.transaction() as conn:
        row = roster.create_device(
            conn,
            device_id=body.id,
            clinic_id=clinic,
            type_=body.type,
            manufacturer=body.manufacturer,
            model=body.model,
            serial=body.serial,
        )
    return device_public(row)


@router.get("/{device_id}", response_model=DevicePublic)
def get_device(device_id: str, services: ServicesDep, principal: StaffDep) -> DevicePublic:
    with services.transaction() as conn:
        row = roster.get_device(conn, device_id)
    ensure_clinic_visible(principal, row["clinic_id"], f"device {device_id!r}")
    return device_public(row)


@router.put("/{device_id}/assignment", response_model=AssignmentPublic)
def assign(
    device_id: str, body: AssignmentIn, services: ServicesDep, principal: StaffDep
) -> AssignmentPublic:
    with services.transaction() as conn:
        device = roster.get_device(conn, device_id)
        ensure_clinic_visible(principal, device["clinic_id"], f"device {device_id!r}")
        if body.patient_id is not None:  # another clinic's patient does not exist for this caller
            patient = roster.get_patient(conn, body.patient_id)
            ensure_clinic_visible(principal, patient["clinic_id"], f"patient {body.patient_id}")
        row = roster.assign_device(
            conn, device_id=device_id, patient_id=body.patient_id, since=body.since
        )
    return AssignmentPublic(**row)


@router.get("/{device_id}/assignments", response_model=list[AssignmentPublic])
def assignments(device_id: str, services: ServicesDep, principal: StaffDep) -> list[AssignmentPublic]:
    with services.transaction() as conn:
        device = roster.get_device(conn, device_id)
        ensure_clinic_visible(principal, device["clinic_id"], f"device {device_id!r}")
        rows = roster.device_assignments(conn, device_id)
    return [AssignmentPublic(**r) for r in rows]

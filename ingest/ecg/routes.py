"""ECG strips API (``docs/contract/ehr-interop.md`` §5): a patient's strips, and one strip whole.

Staff only, like other patient data; another clinic's patient or strip answers 404 as if it did
not exist. Both routes are audited (the audit middleware; the fetch names its patient).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Final
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from ingest.api.deps import ServicesDep, StaffDep, ensure_clinic_visible, visible_patient
from ingest.ecg.store import StripSummary, list_strips, load_strip
from ingest.security.audit import note_patient

router = APIRouter(tags=["ecg"])

MAX_STRIPS: Final = 1000


class EcgStripSummary(BaseModel):
    id: UUID
    measured_at: datetime
    device_id: str
    sample_rate_hz: float
    leads: list[str] = Field(description="lead names in 12-lead order")
    duration_s: float
    interpretation: str | None = Field(description="the device's own interpretation, free text")


class EcgStripList(BaseModel):
    strips: list[EcgStripSummary] = Field(description="newest first")


class EcgStripOut(BaseModel):
    id: UUID
    patient_id: UUID
    device_id: str
    measured_at: datetime
    sample_rate_hz: float
    unit: str = Field(description="always uV: samples are integer microvolts")
    leads: dict[str, list[int]] = Field(description="lead name -> samples, in 12-lead order")
    interpretation: str | None


def _rate(value: float) -> int | float:
    return int(value) if value.is_integer() else value


def _summary(s: StripSummary) -> EcgStripSummary:
    return EcgStripSummary(
        id=s.id,
        measured_at=s.measured_at,
        device_id=s.device_id,
        sample_rate_hz=_rate(s.sample_rate_hz),
        leads=list(s.leads),
        duration_s=round(s.duration_s, 3),
        interpretation=s.interpretation,
    )


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise HTTPException(422, f"{name} needs a time zone offset (e.g. Z)")
    return value


@router.get(
    "/v1/patients/{patient_id}/ecg",
    response_model=EcgStripList,
    summary="A patient's ECG strips (without their samples), newest first",
)
def get_patient_strips(
    patient_id: UUID,
    services: ServicesDep,
    principal: StaffDep,
    since: Annotated[datetime | None, Query(description="RFC 3339, inclusive")] = None,
    until: Annotated[datetime | None, Query(description="RFC 3339, exclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_STRIPS)] = MAX_STRIPS,
) -> EcgStripList:
    visible_patient(services, principal, patient_id)
    since_, until_ = _aware(since, "since"), _aware(until, "until")
    if since_ is not None and until_ is not None and since_ >= until_:
        raise HTTPException(422, "since must be before until")
    with services.transaction() as conn:
        rows = list_strips(conn, patient_id, since=since_, until=until_, limit=limit)
    return EcgStripList(strips=[_summary(row) for row in rows])


@router.get(
    "/v1/ecg/{strip_id}",
    response_model=EcgStripOut,
    summary="One ECG strip with its samples (integer µV per lead)",
)
def get_strip(strip_id: UUID, request: Request, services: ServicesDep, principal: StaffDep) -> Response:
    with services.transaction() as conn:
        stored = load_strip(conn, strip_id)
    if stored is None:
        raise HTTPException(404, f"ECG strip {strip_id} not found")
    ensure_clinic_visible(principal, stored.clinic_id, f"ECG strip {strip_id}")
    note_patient(request.state, stored.patient_id)
    strip = stored.strip
    body = {
        "id": str(stored.id),
        "patient_id": str(stored.patient_id),
        "device_id": strip.device_id,
        "measured_at": strip.measured_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "sample_rate_hz": _rate(strip.sample_rate_hz),
        "unit": strip.unit,
        "leads": {name: samples.tolist() for name, samples in strip.leads.items()},
        "interpretation": strip.interpretation,
    }
    # serialised directly: a 60 s six-lead strip is 180,000 integers, which the response model
    # would validate one by one (it still documents the shape)
    return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")

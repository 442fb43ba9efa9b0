"""The billing API: monitoring episodes, clinician time entries and the monthly report.

Clinicians see only their clinic's patients (another clinic's patient answers 404), admins all.
A time entry is deleted by its author or an admin; the deletion keeps the entry (marked deleted)
and the audit log records the request.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse

from ingest.api.deps import ServicesDep, StaffDep, ensure_clinic_visible, visible_patient
from ingest.billing import episodes, queries, time_entries
from ingest.billing.errors import InvalidMonth
from ingest.billing.months import Month, local_today, parse_month
from ingest.billing.report import build_report, report_csv, report_json
from ingest.billing.schemas import (
    BillingReport,
    EpisodePublic,
    EpisodeStart,
    TimeEntries,
    TimeEntryCreate,
    TimeEntryPublic,
)
from ingest.services import Services
from ingest.store.tokens import Principal

router = APIRouter(tags=["billing"])

#: How far ahead of the server's clock a time entry may be dated (clock skew, not planning).
FUTURE_SLACK: Final = timedelta(minutes=5)
CSV_EXAMPLE: Final = (
    "mrn,display_name,code,units,period_start,period_end,days_with_readings,management_minutes\r\n"
    "MRN1,Ann Able,99454,1,2026-03-01,2026-03-30,17,25\r\n"
    "MRN1,Ann Able,99457,1,2026-03-01,2026-03-31,,25\r\n"
)
MonthQuery = Annotated[
    str | None, Query(max_length=20, description="YYYY-MM; default: the clinic's current month")
]


def _clinic_timezone(services: Services, clinic_id: str) -> str:
    with services.transaction() as conn:
        tz = queries.clinic_timezone(conn, clinic_id)
    if tz is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"clinic {clinic_id!r} not found")
    return tz


def _month(text: str | None, timezone: str) -> Month:
    if text is None:
        return Month.of(local_today(datetime.now(UTC), timezone))
    try:
        return parse_month(text)
    except InvalidMonth as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None


def _entry_public(row: dict[str, Any], principal: Principal) -> TimeEntryPublic:
    return TimeEntryPublic(
        id=row["id"],
        minutes=row["minutes"],
        interactive=row["interactive"],
        performed_at=row["performed_at"],
        clinician=row["author_name"],
        note=row["note"],
        can_delete=principal.is_admin or row["author_token"] == principal.token_id,
    )


@router.post(
    "/v1/patients/{patient_id}/episodes",
    status_code=status.HTTP_201_CREATED,
    response_model=EpisodePublic,
    summary="Start a monitoring episode explicitly (ends the open one)",
)
def start_episode(
    patient_id: UUID, body: EpisodeStart, services: ServicesDep, principal: StaffDep
) -> dict[str, Any]:
    visible_patient(services, principal, patient_id)
    if body.start > datetime.now(UTC) + FUTURE_SLACK:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "start must not be in the future")
    with services.transaction() as conn:
        return episodes.start_episode(conn, patient_id, body.start)


@router.get("/v1/patients/{patient_id}/episodes", response_model=list[EpisodePublic])
def list_episodes(patient_id: UUID, services: ServicesDep, principal: StaffDep) -> list[dict[str, Any]]:
    visible_patient(services, principal, patient_id)
    with services.transaction() as conn:
        return episodes.list_episodes(conn, patient_id)


@router.post(
    "/v1/patients/{patient_id}/time",
    status_code=status.HTTP_201_CREATED,
    response_model=TimeEntryPublic,
    summary="Log clinician time spent on the patient's remote monitoring",
)
def add_time(
    patient_id: UUID, body: TimeEntryCreate, services: ServicesDep, principal: StaffDep
) -> TimeEntryPublic:
    visible_patient(services, principal, patient_id)
    now = datetime.now(UTC)
    performed_at = body.performed_at or now
    if performed_at > now + FUTURE_SLACK:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "performed_at must not be in the future")
    if performed_at.year < 2000:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "performed_at is before 2000")
    with services.transaction() as conn:
        row = time_entries.add_entry(
            conn,
            patient_id=patient_id,
            minutes=body.minutes,
            interactive=body.interactive,
            performed_at=performed_at,
            note=body.note,
            author_token=principal.token_id,
            author_name=principal.name,
        )
    return _entry_public(row, principal)


@router.get("/v1/patients/{patient_id}/time", response_model=TimeEntries)
def list_time(
    patient_id: UUID, services: ServicesDep, principal: StaffDep, month: MonthQuery = None
) -> TimeEntries:
    patient = visible_patient(services, principal, patient_id)
    tz = _clinic_timezone(services, patient["clinic_id"])
    m = _month(month, tz)
    with services.transaction() as conn:
        rows = time_entries.month_entries(conn, patient_id, m.first_day, m.last_day, tz)
    return TimeEntries(
        entries=[_entry_public(r, principal) for r in rows],
        total_minutes=sum(r["minutes"] for r in rows),
        interactive=any(r["interactive"] for r in rows),
        month=str(m),
        timezone=tz,
    )


@router.delete("/v1/patients/{patient_id}/time/{entry_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_time(patient_id: UUID, entry_id: UUID, services: ServicesDep, principal: StaffDep) -> Response:
    visible_patient(services, principal, patient_id)
    with services.transaction() as conn:
        row = time_entries.get_entry(conn, patient_id, entry_id)
        if not principal.is_admin and row["author_token"] != principal.token_id:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "only the entry's author or an admin may delete it"
            )
        time_entries.delete_entry(conn, entry_id, principal.token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _wants_csv(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return any(part.split(";")[0].strip().lower() == "text/csv" for part in accept.split(","))


@router.get(
    "/v1/billing",
    summary="The month's RPM billing report (JSON, or CSV with Accept: text/csv)",
    response_model=BillingReport,
    responses={
        200: {
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": CSV_EXAMPLE,
                }
            }
        }
    },
)
def billing_report(
    request: Request,
    services: ServicesDep,
    principal: StaffDep,
    month: MonthQuery = None,
    clinic: Annotated[
        str | None,
        Query(max_length=64, description="default: the caller's clinic (admins must name one)"),
    ] = None,
    patient: Annotated[UUID | None, Query(description="only this patient")] = None,
) -> Response:
    clinic_id = clinic or principal.clinic_id
    if clinic_id is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "name the clinic: ?clinic=<id>")
    ensure_clinic_visible(principal, clinic_id, f"clinic {clinic_id!r}")
    if patient is not None:
        row = visible_patient(services, principal, patient)
        if row["clinic_id"] != clinic_id:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"patient {patient} not found in clinic {clinic_id!r}"
            )
    tz = _clinic_timezone(services, clinic_id)
    m = _month(month, tz)
    today = local_today(datetime.now(UTC), tz)
    with services.transaction() as conn:
        report = build_report(
            conn, clinic_id=clinic_id, timezone=tz, month=m, today=today, patient_id=patient
        )
    if _wants_csv(request):
        filename = f"rpm-billing-{clinic_id}-{m}.csv"
        return Response(
            report_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return JSONResponse(report_json(report))

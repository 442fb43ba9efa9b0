"""Read-only summaries for the clinician dashboard: who needs attention, latest vitals, coverage.

Clinic-scoped like every other route: a clinician sees only the patients of its token's clinic,
and a patient of another clinic answers 404 as if it did not exist.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Final
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from devices.catalogue import load_catalogue
from devices.display import load_display, unit_names
from ingest.api.deps import ServicesDep, StaffDep, visible_patient
from ingest.api.schemas import EhrLink, ehr_link
from ingest.dashboard import queries
from ingest.store import roster

router = APIRouter(prefix="/v1/dashboard", tags=["dashboard"])

STALE_AFTER: Final = timedelta(hours=24)
TimeZoneQuery = Annotated[
    str,
    Query(
        max_length=64,
        pattern=r"^[A-Za-z0-9_+\-/]{1,64}$",
        description="IANA time zone whose calendar days are counted (default UTC)",
    ),
]


class Me(BaseModel):
    name: str
    role: str
    clinic: str | None


class MetricDisplay(BaseModel):
    metric: str
    label: str = Field(description="for people: `Systolic blood pressure`")
    short: str = Field(description="short label: `SBP`")
    unit: str = Field(description="the display unit people read: `mmHg`")
    ucum_unit: str = Field(description="the unit stored and exported: `mm[Hg]`")
    digits: int = Field(description="decimals shown")


class MetricDisplays(BaseModel):
    metrics: list[MetricDisplay] = Field(description="every metric, in the order people see them")
    units: dict[str, str] = Field(
        description="UCUM code -> display unit, for codes every metric stored in them reads the same"
    )


class LatestValue(BaseModel):
    metric: str
    value: float
    unit: str
    measured_at: datetime
    device_id: str


class AlertCounts(BaseModel):
    critical: int = 0
    warning: int = 0
    total: int = 0


class PatientSummary(BaseModel):
    id: UUID
    clinic: str
    mrn: str
    display_name: str
    last_reading_at: datetime | None
    days_with_readings_30d: int = Field(description="calendar days with at least one reading")
    open_alerts: AlertCounts
    latest: list[LatestValue]
    attention: list[str] = Field(description="why this patient needs attention, most urgent first")
    ehr_link: EhrLink | None = Field(default=None, description="the patient's link to the EHR")


class PatientSummaries(BaseModel):
    patients: list[PatientSummary]


class DeviceSummary(BaseModel):
    id: str
    type: str
    manufacturer: str | None
    model: str | None
    serial: str | None
    battery_level: int | None
    assigned_since: datetime
    last_reading_at: datetime | None = Field(description="measured time of its newest reading")
    last_seen_at: datetime | None = Field(description="when its newest reading was received")


class PatientDetail(PatientSummary):
    fhir_patient_id: str | None
    coverage_days: list[date] = Field(description="the days of the last 30 with a reading")
    time_zone: str
    devices: list[DeviceSummary]


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise HTTPException(422, "unknown time zone") from None


@router.get("/me", response_model=Me, summary="Who the token belongs to (used to sign in)")
def me(principal: StaffDep) -> Me:
    return Me(name=principal.name, role=principal.role, clinic=principal.clinic_id)


@router.get(
    "/metrics", response_model=MetricDisplays, summary="How people read each metric (labels, display units)"
)
def metric_displays(principal: StaffDep) -> MetricDisplays:
    """The display table (devices/data/display.csv) the dashboard formats every value with."""
    catalogue = load_catalogue()
    return MetricDisplays(
        metrics=[
            MetricDisplay(
                metric=d.metric,
                label=d.label,
                short=d.short,
                unit=d.unit,
                ucum_unit=catalogue[d.metric].ucum_unit,
                digits=d.digits,
            )
            for d in load_display().values()
        ],
        units=dict(unit_names()),
    )


@router.get("/patients", response_model=PatientSummaries, summary="Patients, most in need of attention first")
def patient_summaries(
    services: ServicesDep,
    principal: StaffDep,
    q: Annotated[str | None, Query(max_length=200, description="name contains, or exact MRN")] = None,
    tz: TimeZoneQuery = "UTC",
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> PatientSummaries:
    zone = _zone(tz)
    clinics = None if principal.is_admin else [principal.clinic_id or ""]
    search = q.strip() if q and q.strip() else None
    with services.transaction() as conn:
        rows = roster.list_patients(conn, clinic_ids=clinics, search=search, limit=limit)
        summaries = _summarise(conn, rows, list(services.pipeline.catalogue), zone)
    summaries.sort(key=_urgency)
    return PatientSummaries(patients=[s for s, _ in summaries])


@router.get("/patients/{patient_id}", response_model=PatientDetail, summary="One patient's summary")
def patient_detail(
    patient_id: UUID, services: ServicesDep, principal: StaffDep, tz: TimeZoneQuery = "UTC"
) -> PatientDetail:
    zone = _zone(tz)
    row = visible_patient(services, principal, patient_id)
    metrics = list(services.pipeline.catalogue)
    with services.transaction() as conn:
        [(summary, coverage)] = _summarise(conn, [row], metrics, zone)
        devices = queries.patient_devices(conn, patient_id, metrics)
    return PatientDetail(
        **summary.model_dump(),
        fhir_patient_id=row["fhir_patient_id"],
        coverage_days=coverage,
        time_zone=tz,
        devices=[DeviceSummary(**d) for d in devices],
    )


def _summarise(
    conn: Any, rows: list[dict[str, Any]], metrics: list[str], zone: ZoneInfo
) -> list[tuple[PatientSummary, list[date]]]:
    now = datetime.now(UTC)
    ids = [r["id"] for r in rows]
    latest = queries.latest_values(conn, ids, metrics)
    strips = queries.latest_strips(conn, ids)
    coverage = queries.days_with_readings(conn, ids, metrics, queries.day_window(now, zone))
    alerts = queries.open_alert_counts(conn, ids)
    out = []
    for row in rows:
        values = [LatestValue(**v) for v in latest[row["id"]]]
        times = [v.measured_at for v in values]
        if row["id"] in strips:  # an ECG strip counts as a reading
            times.append(strips[row["id"]])
        last = max(times, default=None)
        counts = AlertCounts(**alerts.get(row["id"], {}))
        summary = PatientSummary(
            id=row["id"],
            clinic=row["clinic_id"],
            mrn=row["mrn"],
            display_name=row["display_name"],
            last_reading_at=last,
            days_with_readings_30d=len(coverage[row["id"]]),
            open_alerts=counts,
            latest=values,
            attention=_reasons(counts, last, now),
            ehr_link=ehr_link(row),
        )
        out.append((summary, coverage[row["id"]]))
    return out


def _reasons(counts: AlertCounts, last: datetime | None, now: datetime) -> list[str]:
    reasons = []
    if counts.critical:
        reasons.append(f"{counts.critical} critical alert{'s' if counts.critical > 1 else ''} open")
    if counts.warning:
        reasons.append(f"{counts.warning} warning{'s' if counts.warning > 1 else ''} open")
    if last is None:
        reasons.append("no readings yet")
    elif now - last > STALE_AFTER:
        reasons.append("no reading for over 24 h")
    return reasons


def _urgency(item: tuple[PatientSummary, list[date]]) -> tuple[int, int, int, float, str]:
    """Open critical alerts first, then warnings, then missing data (longest silent first)."""
    s = item[0]
    last = s.last_reading_at.timestamp() if s.last_reading_at else 0.0
    stale = s.last_reading_at is None or s.last_reading_at < datetime.now(UTC) - STALE_AFTER
    return (-s.open_alerts.critical, -s.open_alerts.warning, 0 if stale else 1, last if stale else 0.0,
            s.display_name.casefold())

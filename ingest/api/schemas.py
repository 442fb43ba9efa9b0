"""Request and response shapes of the REST API, kept apart from storage rows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from devices.models import DEVICE_ID_PATTERN

Text200 = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
ClinicId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
FhirId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9.-]{1,64}$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClinicCreate(_In):
    id: ClinicId
    name: Text200
    timezone: str = Field(
        default="UTC",
        max_length=64,
        description="IANA time zone (e.g. America/New_York): billing counts days in it",
    )


ObservationProfile = Literal["base", "us-core", "phd"]


class ClinicUpdate(_In):
    name: Text200 | None = None
    timezone: str | None = Field(default=None, max_length=64, description="IANA time zone")
    observation_profile: ObservationProfile | None = Field(
        default=None,
        description="the Observation profiles the clinic's EHR expects: FHIR vital signs (base),"
        " US Core vital signs (us-core) or the Personal Health Device IG (phd); docs/fhir.md",
    )


class ClinicPublic(BaseModel):
    id: str
    name: str
    timezone: str = "UTC"
    observation_profile: str = "base"
    created_at: datetime


class PatientCreate(_In):
    mrn: Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]
    display_name: Text200
    fhir_patient_id: FhirId | None = None
    clinic: ClinicId = "default"


class EhrLink(BaseModel):
    """What the last look-up of the patient in the EHR found (contract ehr-interop.md §1)."""

    status: Literal["linked", "pending", "not_found", "ambiguous", "error"]
    checked_at: datetime | None
    detail: str | None


class PatientPublic(BaseModel):
    id: UUID
    clinic: str
    mrn: str
    display_name: str
    fhir_patient_id: str | None
    created_at: datetime
    ehr_link: EhrLink | None = None


def patient_public(row: dict[str, Any]) -> PatientPublic:
    """A patient row (``roster.PATIENT_COLUMNS``) as the API shows it."""
    fields = {k: v for k, v in row.items() if k != "clinic_id" and not k.startswith("ehr_link_")}
    return PatientPublic(clinic=row["clinic_id"], ehr_link=ehr_link(row), **fields)


def ehr_link(row: dict[str, Any]) -> EhrLink | None:
    """The patient's link to the EHR: linked whenever it has a FHIR Patient id (by any path)."""
    if "ehr_link_status" not in row:
        return None
    status = row["ehr_link_status"]
    if row["fhir_patient_id"] is not None:
        status = "linked"
    elif status in (None, "linked"):
        status = "pending"
    return EhrLink(status=status, checked_at=row["ehr_link_checked_at"], detail=row["ehr_link_detail"])


class DeviceCreate(_In):
    id: Annotated[str, StringConstraints(pattern=DEVICE_ID_PATTERN)]
    type: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    manufacturer: Text200 | None = None
    model: Text200 | None = None
    serial: Text200 | None = None
    clinic: ClinicId | None = Field(default=None, description="defaults to the caller's clinic")


class DevicePublic(BaseModel):
    id: str
    clinic: str
    type: str
    manufacturer: str | None
    model: str | None
    serial: str | None
    created_at: datetime
    battery_level: int | None = None


class AssignmentIn(_In):
    patient_id: UUID | None = Field(description="null ends the assignment")
    since: AwareDatetime


class AssignmentPublic(BaseModel):
    device_id: str
    patient_id: UUID | None
    since: datetime


class RejectionOut(BaseModel):
    index: int
    reason: str


class IngestResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[RejectionOut]


class ReadingPublic(BaseModel):
    metric: str
    value: float
    unit: str
    measured_at: datetime
    device_id: str
    status: list[str] = []
    original_value: float | None = None
    original_unit: str | None = None


class ReadingsPage(BaseModel):
    readings: list[ReadingPublic]


class Bucket(BaseModel):
    metric: str
    bucket_start: datetime
    min: float
    max: float
    avg: float
    count: int


class BucketsPage(BaseModel):
    buckets: list[Bucket]


class DeadLetterPublic(BaseModel):
    id: int
    received_at: datetime
    source: str
    topic: str | None
    device_id: str | None
    reading_index: int | None
    reason: str
    raw: str = Field(description="the raw bytes, decoded as UTF-8 with replacement characters")
    raw_size: int
    replayed_at: datetime | None
    replay_result: str | None
    summary: bool = Field(
        default=False,
        description="a summary row: letters of this source and device (else topic) over the limit"
        " in one window, counted, not kept; reason and raw are the first one's, as a sample",
    )
    suppressed_count: int = Field(default=0, description="letters counted into this summary")
    last_seen: datetime | None = Field(
        default=None, description="summary: when its last letter came (received_at: the first)"
    )
    window_start: datetime | None = Field(default=None, description="summary: its window")


class DeadLettersPage(BaseModel):
    dead_letters: list[DeadLetterPublic]


class DeadLetterFlood(BaseModel):
    """One source and device (else topic) that went over the dead-letter limit in one window."""

    id: int = Field(description="the summary row (GET /v1/dead-letters?summaries=true)")
    source: str
    device_id: str | None
    topic: str | None
    window_start: datetime
    first_seen: datetime
    last_seen: datetime
    kept: int = Field(description="letters kept in full in this window (the limit)")
    suppressed_count: int
    reason: str = Field(description="the first suppressed letter's reason, as a sample")


class DeadLetterSummary(BaseModel):
    limit_per_window: int = Field(description="RPM_DEAD_LETTER_LIMIT; 0 = no limit")
    window_s: int
    max_rows: int = Field(description="RPM_DEAD_LETTER_MAX_ROWS; 0 = no cap")
    retention_days: int = Field(description="RPM_DEAD_LETTER_RETENTION_DAYS; 0 = kept")
    rows: int = Field(description="rows in the dead-letter table now")
    since: datetime
    floods: list[DeadLetterFlood] = Field(description="keys over the limit since `since`, busiest first")
    warnings: list[str] = Field(description="for an administrator; empty when all is well")


class ReplayResult(BaseModel):
    id: int
    accepted: int
    duplicates: int
    rejected: list[RejectionOut]
    error: str | None

"""Request and response shapes of the billing API (apart from the storage rows)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints

MAX_MINUTES = 240
NOTE_MAX = 2000

Note = Annotated[str, StringConstraints(min_length=1, max_length=NOTE_MAX, strip_whitespace=True)]


class TimeEntryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    minutes: Annotated[StrictInt, Field(ge=1, le=MAX_MINUTES, description="1-240 minutes")]
    interactive: StrictBool = Field(
        description="the time included an interactive communication with the patient or caregiver"
    )
    performed_at: AwareDatetime | None = Field(default=None, description="default: now")
    note: Note | None = None


class TimeEntryPublic(BaseModel):
    id: UUID
    minutes: int
    interactive: bool
    performed_at: datetime
    clinician: str
    note: str | None
    can_delete: bool = Field(description="whether the caller may delete it (its author or an admin)")


class TimeEntries(BaseModel):
    entries: list[TimeEntryPublic]
    total_minutes: int
    interactive: bool
    month: str
    timezone: str


class EpisodeStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: AwareDatetime


class EpisodePublic(BaseModel):
    id: int
    patient_id: UUID
    started_at: datetime
    ended_at: datetime | None
    started_by: str


class PeriodOut(BaseModel):
    start: str = Field(description="first day, YYYY-MM-DD (clinic-local)")
    end: str = Field(description="last day, inclusive")
    days_with_readings: int


class CodeOut(BaseModel):
    code: str
    units: int
    period_start: str
    period_end: str


class ProgressOut(BaseModel):
    code: str
    more: int = Field(description="days or minutes still needed (0 when only an interactive entry is)")
    unit: str = Field(description="days, minutes or interactive")
    reachable: bool


class PatientMonthOut(BaseModel):
    patient_id: UUID
    mrn: str
    display_name: str
    periods: list[PeriodOut] = Field(description="the periods ending in the month, also with 0 days")
    management_minutes: int
    interactive: bool
    codes: list[CodeOut]
    open_period: PeriodOut | None = Field(description="a period overlapping the month that ends after it")
    current_period: PeriodOut | None = Field(description="the period progress is measured in")
    progress: list[ProgressOut]


class BillingReport(BaseModel):
    """``GET /v1/billing`` (docs/contract/billing.md; the additions are in docs/billing.md)."""

    month: str
    clinic: str
    timezone: str
    patients: list[PatientMonthOut]

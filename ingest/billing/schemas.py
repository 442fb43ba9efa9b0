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

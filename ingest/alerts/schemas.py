"""Request and response shapes of the alerts, thresholds, rules and webhooks API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, StringConstraints

from ingest.alerts.rules import Margin, Number

Note = Annotated[str, StringConstraints(max_length=2000, strip_whitespace=True)]
EventType = Literal[
    "opened", "severity_raised", "escalated", "acknowledged", "resolved", "cleared", "recurred"
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoteIn(_In):
    note: Note | None = None


class AlertPublic(BaseModel):
    id: UUID
    patient_id: UUID
    clinic: str
    rule: str
    kind: str
    metric: str | None
    device_id: str | None
    severity: Literal["warning", "critical"]
    status: Literal["open", "acknowledged", "resolved"]
    value: float | None
    last_value: float | None
    unit: str | None
    display_unit: str | None = Field(
        default=None, description="the unit people read with `value` (`mmHg` where `unit` is `mm[Hg]`)"
    )
    message: str = Field(description="for people, in display units")
    details: dict[str, Any]
    onset_at: datetime = Field(description="measured time the condition began")
    latest_at: datetime = Field(description="measured time of the newest reading holding it")
    opened_at: datetime
    late: bool = Field(description="opened by a reading that arrived after newer ones")
    escalation_level: int
    escalated_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    acknowledge_note: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolve_note: str | None
    resolution: Literal["auto", "manual"] | None
    cleared_at: datetime | None
    updated_at: datetime


class AlertsPage(BaseModel):
    alerts: list[AlertPublic]
    next_cursor: str | None = Field(default=None, description="pass as cursor for the next page")


class HistoryEntry(BaseModel):
    id: int
    type: EventType
    at: datetime
    actor: str | None
    note: str | None
    severity: str
    status: str


class AlertDetail(AlertPublic):
    history: list[HistoryEntry]


class ThresholdIn(_In):
    """Absent fields keep the clinic default; ``null`` removes a bound for this patient."""

    model_config = ConfigDict(extra="forbid", strict=True)

    low: Number | None = None
    high: Number | None = None
    critical_low: Number | None = None
    critical_high: Number | None = None
    hysteresis: Margin | None = None
    consecutive: Annotated[int, Field(ge=1, le=100)] | None = None
    sustained_seconds: Annotated[int, Field(ge=0, le=7 * 86400)] | None = None
    debounce_critical: bool | None = None
    # true/false: the alert latches (or not) when its condition clears unacknowledged; null: its
    # severity decides (critical latches)
    latch: bool | None = None
    enabled: bool | None = None


class ThresholdPublic(BaseModel):
    metric: str
    unit: str
    low: float | None
    high: float | None
    critical_low: float | None
    critical_high: float | None
    hysteresis: float
    consecutive: int
    sustained_seconds: int
    debounce_critical: bool
    latch: bool | None = Field(default=None, description="null: a critical alert latches, a warning does not")
    enabled: bool
    source: Literal["default", "clinic", "patient"]


class ThresholdsPage(BaseModel):
    patient_id: UUID
    thresholds: list[ThresholdPublic]


class RuleIn(_In):
    model_config = ConfigDict(extra="forbid", strict=True)

    enabled: bool | None = None
    params: Annotated[dict[str, Any], Field(max_length=32)] = {}


class RulePublic(BaseModel):
    key: str
    kind: str
    metric: str | None
    enabled: bool
    params: dict[str, Any]
    source: Literal["default", "clinic", "patient"]


class RulesPage(BaseModel):
    rules: list[RulePublic]


class RuleKindPublic(BaseModel):
    name: str = Field(description="as in a rule's and an alert's `kind`")
    label: str = Field(description="short, for people: e.g. `out of range`")
    description: str
    scope: Literal["metric", "device"] = Field(description="an alert is about a patient's metric or a device")
    scheduled: bool = Field(description="the scheduler also opens or resolves alerts of this kind")
    title: str = Field(
        description="an alert's title when it has no message; `{metric}`, `{value}` and `{label}`"
        " stand for the metric's name, the value with its unit (led by a space) and the label"
    )
    parameters: dict[str, Any] = Field(description="JSON Schema of the rule parameters")
    default_rules: list[str] = Field(description="keys of the service-wide default rules of this kind")


class RuleKindsPage(BaseModel):
    kinds: list[RuleKindPublic]


class WebhookIn(_In):
    url: Annotated[AnyHttpUrl, Field(description="http(s) URL receiving POSTs")]
    description: Annotated[str, StringConstraints(max_length=200, strip_whitespace=True)] | None = None
    min_severity: Literal["warning", "critical"] = "warning"
    event_types: Annotated[list[EventType], Field(min_length=1, max_length=7)] = [
        "opened",
        "severity_raised",
        "escalated",
        "acknowledged",
        "resolved",
        "cleared",
    ]


class WebhookPublic(BaseModel):
    id: UUID
    clinic: str
    url: str
    description: str | None
    min_severity: str
    event_types: list[str]
    enabled: bool
    created_at: datetime
    created_by: str | None
    disabled_at: datetime | None


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="shown once: the HMAC-SHA256 key for X-RPM-Signature")


class AttemptPublic(BaseModel):
    attempt: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None


class DeliveryPublic(BaseModel):
    id: int
    event_id: int
    event_type: str
    alert_id: UUID
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    attempt_log: list[AttemptPublic]


class DeliveriesPage(BaseModel):
    deliveries: list[DeliveryPublic]

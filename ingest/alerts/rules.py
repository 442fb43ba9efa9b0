"""Rules: their parameters (validated), and the merge of defaults with overrides.

A rule is identified by its key. Its service-wide default row fixes the kind and the metric; a
clinic row and then a patient row may override single parameters and ``enabled``. The effective
rule for a patient is the merge of the three, validated as a whole against the parameter model of
its kind. The kinds themselves (and which model each one validates with) are listed by the
registry in :mod:`ingest.alerts.kinds`; the threshold and rate-of-change models live here because
the history planner and the thresholds API share them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from ingest.errors import InvalidRule

logger = logging.getLogger(__name__)

Severity = Literal["warning", "critical"]
Source = Literal["default", "clinic", "patient"]
SEVERITY_RANK: Final[dict[str, int]] = {"warning": 1, "critical": 2}
MAX_DAYS: Final = 90 * 86400
TOLERANCE: Final = 1e-9

Number = Annotated[float, Field(allow_inf_nan=False, ge=-1e6, le=1e6)]
Margin = Annotated[float, Field(allow_inf_nan=False, ge=0, le=1e6)]
Flag = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$")]


def higher(a: Severity, b: Severity) -> Severity:
    return a if SEVERITY_RANK[a] >= SEVERITY_RANK[b] else b


class RuleParams(BaseModel):
    """The base of every kind's parameter model: unknown fields refused, values not coerced."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


ParamModels = Mapping[str, type[RuleParams]]  # kind name -> its parameter model


Level = Literal["critical", "warning", "margin", "normal"]


class ThresholdParams(RuleParams):
    """Bounds are the last normal values: below ``low`` or above ``high`` is out of range."""

    low: Number | None = None
    high: Number | None = None
    critical_low: Number | None = None
    critical_high: Number | None = None
    hysteresis: Margin = 0.0
    consecutive: Annotated[int, Field(ge=1, le=100)] = 1
    sustained_seconds: Annotated[int, Field(ge=0, le=7 * 86400)] = 0
    debounce_critical: bool = False
    _cuts: tuple[float, float, float, float, float, float] = PrivateAttr()

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdParams:
        lo, hi, clo, chi = self.low, self.high, self.critical_low, self.critical_high
        # (smaller, larger, may they be equal?, reason)
        checks = [
            (clo, lo, True, "critical_low must not be above low"),
            (hi, chi, True, "critical_high must not be below high"),
            (lo, hi, False, "low must be below high"),
            (clo, chi, False, "critical_low must be below critical_high"),
            (lo, chi, False, "low must be below critical_high"),
            (clo, hi, False, "critical_low must be below high"),
        ]
        for a, b, equal_ok, reason in checks:
            if a is not None and b is not None and (a > b or (a == b and not equal_ok)):
                raise ValueError(reason)
        wlo, whi = self.warning_low, self.warning_high
        if wlo is not None and whi is not None and wlo + self.hysteresis >= whi - self.hysteresis:
            raise ValueError("hysteresis leaves no room to clear between the bounds")
        return self

    @property
    def warning_low(self) -> float | None:
        return self.low if self.low is not None else self.critical_low

    @property
    def warning_high(self) -> float | None:
        return self.high if self.high is not None else self.critical_high

    @property
    def active(self) -> bool:
        return self.warning_low is not None or self.warning_high is not None

    @property
    def debounced(self) -> bool:
        return self.consecutive > 1 or self.sustained_seconds > 0

    def model_post_init(self, context: Any, /) -> None:
        inf = float("inf")
        wlo, whi, h = self.warning_low, self.warning_high, self.hysteresis
        self._cuts = (
            -inf if self.critical_low is None else self.critical_low,
            inf if self.critical_high is None else self.critical_high,
            -inf if wlo is None else wlo,
            inf if whi is None else whi,
            -inf if wlo is None else wlo + h,
            inf if whi is None else whi - h,
        )

    def warning_band(self) -> tuple[float, float]:
        """(low, high): a value outside is out of range (infinite where there is no bound)."""
        _, _, wlo, whi, _, _ = self._cuts
        return wlo, whi

    def out_of_range(self, value: float) -> bool:
        """Beyond a warning (or critical) bound: what ``level`` calls warning or critical."""
        _, _, wlo, whi, _, _ = self._cuts
        return value < wlo or value > whi

    def level(self, value: float) -> Level:
        clo, chi, wlo, whi, mlo, mhi = self._cuts
        if value < clo or value > chi:
            return "critical"
        if value < wlo or value > whi:
            return "warning"
        if value < mlo or value > mhi:
            return "margin"
        return "normal"

    def direction(self, value: float) -> Literal["low", "high"]:
        wlo = self.warning_low
        return "low" if wlo is not None and value < wlo else "high"


class RateParams(RuleParams):
    """Change against the patient's own readings in the window before each new reading."""

    delta: Annotated[float, Field(allow_inf_nan=False, gt=0, le=1e6)]
    critical_delta: Annotated[float, Field(allow_inf_nan=False, gt=0, le=1e6)] | None = None
    window_seconds: Annotated[int, Field(ge=60, le=MAX_DAYS)]
    grace_seconds: Annotated[int, Field(ge=0, le=7 * 86400)] = 0
    direction: Literal["rise", "fall"] = "rise"
    hysteresis: Margin = 0.0

    @model_validator(mode="after")
    def _consistent(self) -> RateParams:
        if self.critical_delta is not None and self.critical_delta <= self.delta:
            raise ValueError("critical_delta must be larger than delta")
        if self.hysteresis >= self.delta:
            raise ValueError("hysteresis must be smaller than delta")
        return self

    def severity(self, change: float) -> Severity | None:
        # Values arrive converted between units (lb -> kg): compare with a tolerance so that a
        # gain of exactly ``delta`` fires even when float arithmetic leaves it a hair below.
        if self.critical_delta is not None and change >= self.critical_delta - TOLERANCE:
            return "critical"
        return "warning" if change >= self.delta - TOLERANCE else None


def parse_params(kind: str, raw: Mapping[str, Any], models: ParamModels) -> RuleParams:
    """Validate a rule's merged parameters with the model of its kind; raise :class:`InvalidRule`
    with a readable reason (also for a kind ``models`` does not know)."""
    model = models.get(kind)
    if model is None:
        raise InvalidRule(f"unknown rule kind {kind!r}")
    try:
        return model.model_validate(dict(raw))
    except ValidationError as exc:
        raise InvalidRule(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)[:500]


@dataclass(frozen=True, slots=True)
class RuleRow:
    """One stored rule row (default, clinic or patient level)."""

    id: int
    key: str
    kind: str
    metric: str | None
    clinic_id: str | None
    patient_id: UUID | None
    enabled: bool | None
    params: Mapping[str, Any]

    @property
    def source(self) -> Source:
        if self.patient_id is not None:
            return "patient"
        return "clinic" if self.clinic_id is not None else "default"


@dataclass(frozen=True, slots=True)
class Rule:
    """The effective rule for one patient (or clinic)."""

    id: int
    key: str
    kind: str
    metric: str | None
    enabled: bool
    params: RuleParams
    source: Source

    @property
    def threshold(self) -> ThresholdParams:
        assert isinstance(self.params, ThresholdParams)
        return self.params


def merge(layers: Iterable[RuleRow], models: ParamModels) -> Rule:
    """Merge default -> clinic -> patient rows (in that order) into one effective rule.

    An override that no longer validates against the layers below it (e.g. a default changed
    since) is skipped with a warning rather than disabling the rule.
    """
    rows = list(layers)
    base = rows[0]
    assert base.source == "default"
    params: dict[str, Any] = dict(base.params)
    enabled = bool(base.enabled)
    parsed = parse_params(base.kind, params, models)
    chosen = base
    for row in rows[1:]:
        candidate = {**params, **row.params}
        try:
            parsed = parse_params(base.kind, candidate, models)
        except InvalidRule as exc:
            logger.warning("rule %s: %s override %d ignored: %s", base.key, row.source, row.id, exc)
            continue
        params = candidate
        if row.enabled is not None:
            enabled = row.enabled
        chosen = row
    return Rule(
        id=chosen.id,
        key=base.key,
        kind=base.kind,
        metric=base.metric,
        enabled=enabled,
        params=parsed,
        source=chosen.source,
    )

"""``rate_of_change``: a metric rising (or falling) by more than a delta within a window.

Everything about the kind is here: its parameter model and pure decision (no I/O and no clock:
the baseline in the window before a new reading, the change against it, the message), its
defaults, and its evaluation of a batch. The history planner (:mod:`ingest.alerts.planner`, which
fetches each group's window in the batch's first round trip) reads the window's reach from here.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Final, Literal

from pydantic import Field, model_validator

from devices.display import display_of
from ingest.alerts.evaluate import AlertState, Clear, Decision, Keep, Open, Point, duration_text, escalation
from ingest.alerts.history import Group, GroupKey
from ingest.alerts.kinds.base import DefaultRule, ReadingsRun, RuleKind, opened
from ingest.alerts.rules import MAX_DAYS, Margin, Rule, RuleParams, Severity
from ingest.alerts.store import AlertKey, NewAlert

logger = logging.getLogger(__name__)

TOLERANCE: Final = 1e-9

# --------------------------------------------------------------------------- parameters (pure)


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


def rate_params(rule: Rule) -> RateParams:
    """The parameters of a ``rate_of_change`` rule."""
    p = rule.params
    assert isinstance(p, RateParams)
    return p


def reach(rule: Rule) -> timedelta:
    """How far before a new reading the rule looks (its window and its grace)."""
    p = rate_params(rule)
    return timedelta(seconds=p.window_seconds + p.grace_seconds)


# --------------------------------------------------------------------------- decision (pure)


@dataclass(frozen=True, slots=True)
class Baseline:
    """The extreme reading in the window before a new one (lowest for rises, highest for falls)."""

    value: float
    at: datetime


def extreme(
    window: list[Point], times: list[datetime], lo: datetime, hi: datetime, lowest: bool
) -> Baseline | None:
    """The lowest (or highest) reading measured in [lo, hi); the earliest of equals."""
    best: Point | None = None
    for pt in window[bisect_left(times, lo) : bisect_left(times, hi)]:
        if best is None or (pt.value < best.value if lowest else pt.value > best.value):
            best = pt
    return None if best is None else Baseline(best.value, best.at)


def decide(p: RateParams, point: Point, baseline: Baseline | None, alert: AlertState | None) -> Decision:
    change: float | None = None
    if baseline is not None:
        change = point.value - baseline.value if p.direction == "rise" else baseline.value - point.value
    severity = p.severity(change) if change is not None else None
    if alert is not None:
        if severity is not None:
            return Keep(point.at, point.value, escalation(alert, severity))
        cleared = change is None or change < p.delta - p.hysteresis
        if cleared and point.at > alert.latest_at:
            return Clear(point.at, point.value)
        return None
    if severity is None or baseline is None or change is None:
        return None
    return Open(
        severity=severity,
        onset_at=point.at,
        latest_at=point.at,
        value=point.value,
        last_value=point.value,
        details={
            "change": round(change, 6),
            "baseline_value": baseline.value,
            "baseline_at": baseline.at.isoformat(),
            "window_seconds": p.window_seconds,
        },
    )


def message(p: RateParams, metric: str, change: float) -> str:
    """For people, in display units: ``Weight rose 1.2 kg within 24 h``."""
    verb = "rose" if p.direction == "rise" else "fell"
    shown = display_of(metric)
    return f"{shown.label} {verb} {shown.quantity(change)} within {duration_text(p.window_seconds)}"


# --------------------------------------------------------------------------- defaults

DEFAULTS: Final = (
    DefaultRule(
        "rate:body_weight:24h",
        True,
        {
            "delta": 1.0,
            "critical_delta": 2.0,
            "window_seconds": 86400,
            "grace_seconds": 21600,
            "direction": "rise",
            "hysteresis": 0.3,
        },
        "body_weight",
        "Heart failure: gain of 1 kg or more within a day (2 kg: critical)",
    ),
    DefaultRule(
        "rate:body_weight:7d",
        True,
        {
            "delta": 2.3,
            "critical_delta": None,
            "window_seconds": 604800,
            "grace_seconds": 21600,
            "direction": "rise",
            "hysteresis": 0.3,
        },
        "body_weight",
        "Heart failure: gain of 2.3 kg (5 lb) or more within a week",
    ),
)

# --------------------------------------------------------------------------- the kind


class RateOfChangeKind(RuleKind):
    name = "rate_of_change"
    order = 20
    params = RateParams
    scope = "metric"
    label = "rapid change"
    description = "A metric that rose (or fell) by more than a set amount within a time window."

    def defaults(self) -> Sequence[DefaultRule]:
        return DEFAULTS

    def select(self, run: ReadingsRun) -> Collection[GroupKey]:
        return run.plan.rates.keys()

    def on_group(self, run: ReadingsRun, gkey: GroupKey, g: Group) -> None:
        window = run.history.windows.get(gkey, [])
        for rule in run.plan.rates.get(gkey, ()):
            _evaluate(run, g, rule, window)


def _evaluate(run: ReadingsRun, g: Group, rule: Rule, window: list[Point]) -> None:
    p = rate_params(rule)
    key: AlertKey = (g.patient_id, rule.key, "")
    unit = run.unit(g.metric)
    times = [pt.at for pt in window]
    back = reach(rule)
    for sr in g.readings:
        r = sr.reading
        base = extreme(window, times, r.measured_at - back, r.measured_at, p.direction == "rise")
        decision = decide(p, Point(r.measured_at, r.value, r.device_id, True), base, run.writer.state(key))
        if decision is None:
            continue
        change = 0.0
        if base is not None:
            change = r.value - base.value if p.direction == "rise" else base.value - r.value
        text = message(p, g.metric, change)
        late = isinstance(decision, Open) and run.late(g, r.measured_at)

        def new_alert(d: Open, text: str = text, late: bool = late, device: str = r.device_id) -> NewAlert:
            return opened(d, g.patient_id, rule, "", text, device, unit=unit, late=late)

        def raised(_severity: str, text: str = text) -> str:
            return text

        run.writer.apply(key, decision, new_alert=new_alert, raised_message=raised, late=late, latch=p.latch)


KIND: Final = RateOfChangeKind()

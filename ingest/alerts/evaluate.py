"""Pure decisions: given a rule, the readings around a new one and the active alert, what happens.

No I/O and no clock. The engine feeds the new readings in time order and applies each decision
before the next, so a batch behaves as if its readings had arrived one by one.

Late readings: a reading may open an alert for the time it describes, but it never clears an
alert that a reading measured after it holds open (``at > latest_at`` is required to clear).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ingest.alerts.rules import SEVERITY_RANK, RateParams, Severity, ThresholdParams

OUT_OF_RANGE = frozenset({"warning", "critical"})


@dataclass(frozen=True, slots=True)
class Point:
    """One reading of a patient's metric (new in this batch or already stored)."""

    at: datetime
    value: float
    device_id: str = ""
    new: bool = False


@dataclass(frozen=True, slots=True)
class AlertState:
    """What decisions need to know of the active alert of a condition."""

    severity: Severity
    latest_at: datetime


@dataclass(frozen=True, slots=True)
class Open:
    severity: Severity
    onset_at: datetime
    latest_at: datetime
    value: float | None
    last_value: float | None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Keep:
    """The condition still holds: move the alert's newest reading forward, maybe escalate."""

    at: datetime
    value: float | None
    raise_to: Severity | None = None


@dataclass(frozen=True, slots=True)
class Clear:
    at: datetime
    value: float | None


Decision = Open | Keep | Clear | None


def _raise(alert: AlertState, severity: Severity | None) -> Severity | None:
    if severity is not None and SEVERITY_RANK[severity] > SEVERITY_RANK[alert.severity]:
        return severity
    return None


def run_around(points: Sequence[Point], i: int, inside: Callable[[Point], bool]) -> tuple[int, int]:
    """The maximal run of consecutive points satisfying ``inside`` that contains ``points[i]``."""
    start = i
    while start > 0 and inside(points[start - 1]):
        start -= 1
    end = i
    while end + 1 < len(points) and inside(points[end + 1]):
        end += 1
    return start, end


def _debounced(p: ThresholdParams, points: Sequence[Point], run: tuple[int, int]) -> bool:
    start, end = run
    span = (points[end].at - points[start].at).total_seconds()
    return end - start + 1 >= p.consecutive and span >= p.sustained_seconds


def threshold(p: ThresholdParams, points: Sequence[Point], i: int, alert: AlertState | None) -> Decision:
    """Decide for ``points[i]`` (a new reading) with ``points`` the time-ordered context."""
    point = points[i]
    level = p.level(point.value)
    if level in OUT_OF_RANGE:
        run = run_around(points, i, lambda x: p.level(x.value) in OUT_OF_RANGE)
        severity: Severity | None = "warning" if _debounced(p, points, run) else None
        if level == "critical":
            if not p.debounce_critical:
                severity = "critical"
            elif _debounced(p, points, run_around(points, i, lambda x: p.level(x.value) == "critical")):
                severity = "critical"
        if alert is not None:
            return Keep(point.at, point.value, _raise(alert, severity))
        if severity is None:
            return None
        first, last = points[run[0]], points[run[1]]
        return Open(
            severity=severity,
            onset_at=first.at,
            latest_at=max(last.at, point.at),
            value=point.value,
            last_value=last.value,
            details={
                "direction": p.direction(point.value),
                "readings_in_episode": run[1] - run[0] + 1,
                "bounds": _bounds(p),
            },
        )
    if level == "normal" and alert is not None and point.at > alert.latest_at:
        return Clear(point.at, point.value)
    return None


def _bounds(p: ThresholdParams) -> dict[str, float | None]:
    return {
        "low": p.low,
        "high": p.high,
        "critical_low": p.critical_low,
        "critical_high": p.critical_high,
        "hysteresis": p.hysteresis,
    }


def threshold_message(p: ThresholdParams, metric: str, value: float, unit: str, sev: str) -> str:
    if p.direction(value) == "low":
        bound = p.critical_low if sev == "critical" and p.critical_low is not None else p.warning_low
        side = "below"
    else:
        bound = p.critical_high if sev == "critical" and p.critical_high is not None else p.warning_high
        side = "above"
    which = "critical " if sev == "critical" else ""
    limit = "low" if side == "below" else "high"
    return f"{metric} {value:g} {unit} {side} {which}{limit} {bound:g}"


@dataclass(frozen=True, slots=True)
class Baseline:
    """The extreme reading in the window before a new one (lowest for rises, highest for falls)."""

    value: float
    at: datetime


def rate(p: RateParams, point: Point, baseline: Baseline | None, alert: AlertState | None) -> Decision:
    change: float | None = None
    if baseline is not None:
        change = point.value - baseline.value if p.direction == "rise" else baseline.value - point.value
    severity = p.severity(change) if change is not None else None
    if alert is not None:
        if severity is not None:
            return Keep(point.at, point.value, _raise(alert, severity))
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


def rate_message(p: RateParams, metric: str, change: float, unit: str) -> str:
    verb = "rose" if p.direction == "rise" else "fell"
    return f"{metric} {verb} {change:.2f} {unit} within {_duration(p.window_seconds)}"


def flags(
    rule_flags: Collection[str],
    severity: Severity,
    auto_resolve: bool,
    at: datetime,
    present: Collection[str],
    alert: AlertState | None,
) -> Decision:
    """Device status flags of one measurement (all readings a device took at one time)."""
    hit = sorted(set(rule_flags).intersection(present))
    if hit:
        if alert is not None:
            return Keep(at, None, _raise(alert, severity))
        return Open(severity, at, at, None, None, {"flags": hit})
    if alert is not None and auto_resolve and at > alert.latest_at:
        return Clear(at, None)
    return None


def _duration(seconds: int) -> str:
    if seconds % 86400 == 0:
        days = seconds // 86400
        return f"{days} d" if days != 1 else "24 h"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min"


def duration_text(seconds: int) -> str:
    return _duration(seconds)

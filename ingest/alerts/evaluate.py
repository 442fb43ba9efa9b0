"""Pure decisions: what every rule kind's decision looks like (open, keep, clear an alert), and the
helpers kinds share (escalation, runs of points, device flags, durations for people). Each kind's
own decision lives in its module of :mod:`ingest.alerts.kinds`.

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

from ingest.alerts.rules import SEVERITY_RANK, Severity


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


def escalation(alert: AlertState, severity: Severity | None) -> Severity | None:
    """The severity to raise an alert to: ``severity`` when it is higher than the alert's."""
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
            return Keep(at, None, escalation(alert, severity))
        return Open(severity, at, at, None, None, {"flags": hit})
    if alert is not None and auto_resolve and at > alert.latest_at:
        return Clear(at, None)
    return None


def duration_text(seconds: int) -> str:
    """A cadence or window for people: ``24 h``, ``7 d``, ``6 h``, ``30 min``."""
    if seconds % 86400 == 0:
        days = seconds // 86400
        return f"{days} d" if days != 1 else "24 h"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min"


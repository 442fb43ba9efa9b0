"""``rate_of_change``: a metric rising (or falling) by more than a delta within a window.

The parameter model and the pure decision live in :mod:`ingest.alerts.rules` and
:mod:`ingest.alerts.evaluate`, shared with the history planner (which fetches each group's window
in the batch's first round trip).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Final

from ingest.alerts import evaluate, history
from ingest.alerts.evaluate import Open, Point
from ingest.alerts.history import Group, GroupKey
from ingest.alerts.kinds.base import DefaultRule, ReadingsRun, RuleKind, opened
from ingest.alerts.rules import RateParams, Rule
from ingest.alerts.store import AlertKey, NewAlert

logger = logging.getLogger(__name__)

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


class RateOfChangeKind(RuleKind):
    name = "rate_of_change"
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
    p = rule.params
    assert isinstance(p, RateParams)
    key: AlertKey = (g.patient_id, rule.key, "")
    unit = run.unit(g.metric)
    times = [pt.at for pt in window]
    reach = history.reach(rule)
    for sr in g.readings:
        r = sr.reading
        base = history.extreme(window, times, r.measured_at - reach, r.measured_at, p.direction == "rise")
        decision = evaluate.rate(
            p, Point(r.measured_at, r.value, r.device_id, True), base, run.writer.state(key)
        )
        if decision is None:
            continue
        change = 0.0
        if base is not None:
            change = r.value - base.value if p.direction == "rise" else base.value - r.value
        message = evaluate.rate_message(p, g.metric, change, unit)
        late = isinstance(decision, Open) and run.late(g, r.measured_at)

        def new_alert(
            d: Open, message: str = message, late: bool = late, device: str = r.device_id
        ) -> NewAlert:
            return opened(d, g.patient_id, rule, "", message, device, unit=unit, late=late)

        def raised(_severity: str, message: str = message) -> str:
            return message

        run.writer.apply(key, decision, new_alert=new_alert, raised_message=raised, late=late)

"""``threshold``: a metric's value out of its range (warning and critical bounds, debounced).

The parameter model and the pure decision live in :mod:`ingest.alerts.rules` and
:mod:`ingest.alerts.evaluate`, shared with the history planner (which fetches the runs around
out-of-range readings of debounced thresholds) and the thresholds API.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Final

from ingest.alerts import evaluate
from ingest.alerts.evaluate import Decision, Open, Point
from ingest.alerts.history import Group, GroupKey, clusters, new_point
from ingest.alerts.kinds.base import DefaultRule, ReadingsRun, RuleKind, opened
from ingest.alerts.rules import Rule, ThresholdParams
from ingest.alerts.store import AlertKey, NewAlert

logger = logging.getLogger(__name__)


def _default(
    metric: str,
    bounds: tuple[float | None, float | None, float | None, float | None],
    hysteresis: float,
    consecutive: int,
    description: str,
) -> DefaultRule:
    low, high, critical_low, critical_high = bounds
    params = {
        "low": low,
        "high": high,
        "critical_low": critical_low,
        "critical_high": critical_high,
        "hysteresis": hysteresis,
        "consecutive": consecutive,
        "sustained_seconds": 0,
        "debounce_critical": False,
    }
    return DefaultRule(f"threshold:{metric}", True, params, metric, description)


_NONE: Final = (None, None, None, None)

# Adults in home monitoring: (low, high, critical low, critical high), hysteresis, readings in a
# row for a warning. The rationale of each bound is in docs/alerts.md.
DEFAULTS: Final = (
    _default(
        "heart_rate",
        (50, 110, 40, 130),
        5,
        2,
        "Brady-/tachycardia; two consecutive readings for a warning, critical at once",
    ),
    _default(
        "respiratory_rate", (12, 20, 9, 24), 2, 2, "NEWS2 bands: 9-11 and 21-24 warn, <=8 and >=25 critical"
    ),
    _default(
        "spo2",
        (92, None, 88, None),
        1,
        2,
        "Hypoxaemia; COPD patients with a target of 88-92 % need a patient override",
    ),
    _default(
        "body_temperature", (35.0, 38.0, 34.0, 39.5), 0.2, 1, "Fever above 38.0 C, hypothermia below 35.0 C"
    ),
    _default(
        "systolic_bp",
        (90, 160, 80, 180),
        5,
        1,
        "Hypotension below 90, severe hypertension above 160, crisis above 180 mmHg",
    ),
    _default("diastolic_bp", (50, 100, 40, 120), 5, 1, "Diastolic above 100, crisis above 120 mmHg"),
    _default("mean_arterial_pressure", (65, 130, 60, 140), 5, 1, "Hypoperfusion below 65 mmHg"),
    _default(
        "body_weight",
        _NONE,
        0.5,
        1,
        "No absolute default: weight is judged by its change; set bounds per patient",
    ),
    _default(
        "blood_glucose",
        (70, 250, 54, 400),
        10,
        1,
        "ADA hypoglycaemia level 1 below 70, level 2 below 54 mg/dL; hyperglycaemia above 250",
    ),
    _default("steps", _NONE, 0, 1, "Not a vital sign: no default bounds"),
)


class ThresholdKind(RuleKind):
    name = "threshold"
    params = ThresholdParams
    scope = "metric"
    label = "out of range"
    description = "A reading outside the bounds of its metric (warning, then critical), debounced."

    def defaults(self) -> Sequence[DefaultRule]:
        return DEFAULTS

    def select(self, run: ReadingsRun) -> Collection[GroupKey]:
        # Groups with a reading out of range, and groups whose open alert a reading may clear.
        # (A group with neither cannot change anything: every reading is within the band.)
        return set(run.plan.out_of_range).union(run.alerted(self.name))

    def on_group(self, run: ReadingsRun, gkey: GroupKey, g: Group) -> None:
        rules = g.rules
        if rules is None or rules.threshold is None:
            return
        rule = rules.threshold
        p = rule.threshold
        key: AlertKey = (g.patient_id, rule.key, "")
        for n, cluster in enumerate(clusters(g, p)):
            points = run.history.contexts.get((gkey, n)) or [new_point(sr) for sr in cluster]
            for i, point in enumerate(points):
                if point.new:
                    decision = evaluate.threshold(p, points, i, run.writer.state(key))
                    if decision is not None:
                        _apply(run, g, rule, key, point, decision)


def _apply(run: ReadingsRun, g: Group, rule: Rule, key: AlertKey, point: Point, decision: Decision) -> None:
    p = rule.threshold
    unit = run.unit(g.metric)
    late = isinstance(decision, Open) and run.late(g, point.at)

    def new_alert(d: Open) -> NewAlert:
        message = evaluate.threshold_message(p, g.metric, point.value, unit, d.severity)
        return opened(d, g.patient_id, rule, "", message, point.device_id, unit=unit, late=late)

    def raised(severity: str) -> str:
        return evaluate.threshold_message(p, g.metric, point.value, unit, severity)

    run.writer.apply(key, decision, new_alert=new_alert, raised_message=raised, late=late)

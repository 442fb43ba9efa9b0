"""``threshold``: a metric's value out of its range (warning and critical bounds, debounced).

Everything about the kind is here: its parameter model and pure decision (no I/O and no clock:
the bounds, the debounce run around a new reading, the message), its defaults, and its evaluation
of a batch.

Blood pressure is read as one value: the systolic and diastolic readings a device took at one
time (one measurement) open, hold and clear one alert, ``threshold:blood_pressure`` (metric
``blood_pressure``), with the worse severity of the two and a message such as "Blood pressure
179/106 mmHg above 160/100". The rules stay per component (``threshold:systolic_bp``,
``threshold:diastolic_bp``): each component is decided by its own rule, and the alert holds while
either is out of range and clears once the measured components are back within their limits. A
component measured alone is judged on its own value.

The history planner (:mod:`ingest.alerts.planner`, which fetches the runs around out-of-range
readings of debounced thresholds) and the thresholds API read the model from here.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Annotated, Any, Final, Literal

from pydantic import Field, PrivateAttr, model_validator

from devices.display import display_of
from ingest.alerts.evaluate import AlertState, Clear, Decision, Keep, Open, Point, escalation, run_around
from ingest.alerts.history import Group, GroupKey, new_point
from ingest.alerts.kinds.base import DefaultRule, ReadingsRun, RuleKind, opened
from ingest.alerts.rules import Margin, Number, Rule, RuleParams, Severity, higher
from ingest.alerts.store import AlertKey, NewAlert
from ingest.pipeline import StoredReading

logger = logging.getLogger(__name__)

Level = Literal["critical", "warning", "margin", "normal"]
OUT_OF_RANGE: Final = frozenset({"warning", "critical"})
CLUSTER_GAP: Final = timedelta(hours=1)

SYSTOLIC: Final = "systolic_bp"
DIASTOLIC: Final = "diastolic_bp"
BP_COMPONENTS: Final = (SYSTOLIC, DIASTOLIC)
BP_METRIC: Final = "blood_pressure"  # the metric of the one alert of a BP measurement
BP_KEY: Final = f"threshold:{BP_METRIC}"

# --------------------------------------------------------------------------- parameters (pure)


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


def threshold_params(rule: Rule) -> ThresholdParams:
    """The parameters of a ``threshold`` rule."""
    p = rule.params
    assert isinstance(p, ThresholdParams)
    return p


# --------------------------------------------------------------------------- decision (pure)


def _debounced(p: ThresholdParams, points: Sequence[Point], run: tuple[int, int]) -> bool:
    start, end = run
    span = (points[end].at - points[start].at).total_seconds()
    return end - start + 1 >= p.consecutive and span >= p.sustained_seconds


def decide(p: ThresholdParams, points: Sequence[Point], i: int, alert: AlertState | None) -> Decision:
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
            return Keep(point.at, point.value, escalation(alert, severity))
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


def message(p: ThresholdParams, metric: str, value: float, sev: str) -> str:
    """For people, in display units: ``Systolic blood pressure 185 mmHg above critical high 180``."""
    if p.direction(value) == "low":
        bound = p.critical_low if sev == "critical" and p.critical_low is not None else p.warning_low
        side = "below"
    else:
        bound = p.critical_high if sev == "critical" and p.critical_high is not None else p.warning_high
        side = "above"
    which = "critical " if sev == "critical" else ""
    limit = "low" if side == "below" else "high"
    shown = display_of(metric)
    value_text = f"{shown.exact(value)} {shown.unit}".rstrip()
    bound_text = "" if bound is None else f" {shown.exact(bound)}"
    return f"{shown.label} {value_text} {side} {which}{limit}{bound_text}"


def clusters(g: Group, p: ThresholdParams) -> list[list[StoredReading]]:
    """New readings split where they are further apart than a run could bridge cheaply."""
    gap = CLUSTER_GAP + timedelta(seconds=p.sustained_seconds)
    found: list[list[StoredReading]] = []
    for sr in g.readings:
        if found and sr.reading.measured_at - found[-1][-1].reading.measured_at <= gap:
            found[-1].append(sr)
        else:
            found.append([sr])
    return found


# --------------------------------------------------------------------------- blood pressure (pure)


def _crossed(p: ThresholdParams, value: float) -> tuple[str, bool, float] | None:
    """(side, critical?, the bound crossed) of an out-of-range value; None when within range."""
    level = p.level(value)
    if level not in OUT_OF_RANGE:
        return None
    critical = level == "critical"
    if p.direction(value) == "low":
        bound = p.critical_low if critical and p.critical_low is not None else p.warning_low
        side = "below"
    else:
        bound = p.critical_high if critical and p.critical_high is not None else p.warning_high
        side = "above"
    assert bound is not None
    return side, critical, bound


def bp_message(parts: Mapping[str, tuple[ThresholdParams, float]]) -> str:
    """A BP measurement for people: ``parts`` maps each measured component to its rule's
    parameters and value. "Blood pressure 179/106 mmHg above 160/100", "Blood pressure 185/125
    mmHg above critical 180/120", "Blood pressure 179/76 mmHg: systolic above 160"; a component
    measured alone: "Systolic blood pressure 179 mmHg above high 160"."""
    if len(parts) == 1:
        ((metric, (p, value)),) = parts.items()
        shown = display_of(metric)
        crossed = _crossed(p, value)
        text = f"{shown.label} {shown.exact(value)} {shown.unit}".rstrip()
        if crossed is None:
            return text
        side, critical, bound = crossed
        which = "critical " if critical else ""
        limit = "low" if side == "below" else "high"
        return f"{text} {side} {which}{limit} {shown.exact(bound)}"
    sp, sv = parts[SYSTOLIC]
    dp, dv = parts[DIASTOLIC]
    sd, dd = display_of(SYSTOLIC), display_of(DIASTOLIC)
    text = f"Blood pressure {sd.exact(sv)}/{dd.exact(dv)} {sd.unit}"
    s, d = _crossed(sp, sv), _crossed(dp, dv)
    if s is not None and d is not None and s[:2] == d[:2]:
        which = "critical " if s[1] else ""
        return f"{text} {s[0]} {which}{sd.exact(s[2])}/{dd.exact(d[2])}"
    said = [
        f"{name} {c[0]} {'critical ' if c[1] else ''}{shown.exact(c[2])}"
        for name, c, shown in (("systolic", s, sd), ("diastolic", d, dd))
        if c is not None
    ]
    return f"{text}: {', '.join(said)}" if said else text


def bp_decide(
    decisions: Mapping[str, Decision], alert: AlertState | None, alert_components: Collection[str]
) -> Decision:
    """One decision for a BP measurement from its components' decisions (each taken by the
    component's rule against the measurement's alert): the alert opens with the worse severity
    of the components that open it, holds while any component is out of range, and clears only
    when every measured component clears and no component out of range during the alert
    (``alert_components``: those it opened for and those out of range since) is missing from the
    measurement."""
    opens = [d for d in decisions.values() if isinstance(d, Open)]
    keeps = [d for d in decisions.values() if isinstance(d, Keep)]
    if alert is None:
        if not opens:
            return None
        severity: Severity = "warning"
        for d in opens:
            severity = higher(severity, d.severity)
        return Open(
            severity=severity,
            onset_at=min(d.onset_at for d in opens),
            latest_at=max(d.latest_at for d in opens),
            value=None,
            last_value=None,
        )
    if keeps:
        raise_to: Severity | None = None
        for k in keeps:
            if k.raise_to is not None:
                raise_to = k.raise_to if raise_to is None else higher(raise_to, k.raise_to)
        return Keep(max(k.at for k in keeps), None, raise_to)
    clears = [d for d in decisions.values() if isinstance(d, Clear)]
    if clears and len(clears) == len(decisions) and set(alert_components) <= set(decisions):
        return Clear(max(c.at for c in clears), None)
    return None


# --------------------------------------------------------------------------- defaults


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

# --------------------------------------------------------------------------- the kind


class ThresholdKind(RuleKind):
    name = "threshold"
    order = 10
    params = ThresholdParams
    scope = "metric"
    label = "out of range"
    description = "A reading outside the bounds of its metric (warning, then critical), debounced."

    def defaults(self) -> Sequence[DefaultRule]:
        return DEFAULTS

    def select(self, run: ReadingsRun) -> Collection[GroupKey]:
        # Groups with a reading out of range, and groups whose open alert a reading may clear.
        # (A group with neither cannot change anything: every reading is within the band.)
        picked = set(run.plan.out_of_range).union(run.alerted(self.name))
        # Blood pressure: both components of a patient are decided together, for one alert.
        bp = {pint for pint, metric in picked if metric in BP_COMPONENTS}
        bp.update(k[0].int for k in run.writer.active if k[1] == BP_KEY)
        for pint in bp:
            for metric in BP_COMPONENTS:
                if (pint, metric) in run.groups:
                    picked.add((pint, metric))
        return picked

    def on_group(self, run: ReadingsRun, gkey: GroupKey, g: Group) -> None:
        if g.metric in BP_COMPONENTS:
            if g.metric == SYSTOLIC or (gkey[0], SYSTOLIC) not in run.groups:
                _blood_pressure(run, gkey[0])
            return  # a patient's diastolic readings are decided with their systolic ones
        _decide_group(run, gkey, g)


def _decide_group(run: ReadingsRun, gkey: GroupKey, g: Group) -> None:
    """Each new reading of one patient's metric, in time order, against the metric's own alert."""
    rules = g.rules
    if rules is None or rules.threshold is None:
        return
    rule = rules.threshold
    p = threshold_params(rule)
    key: AlertKey = (g.patient_id, rule.key, "")
    for n, cluster in enumerate(clusters(g, p)):
        points = run.history.contexts.get((gkey, n)) or [new_point(sr) for sr in cluster]
        for i, point in enumerate(points):
            if point.new:
                decision = decide(p, points, i, run.writer.state(key))
                if decision is not None:
                    _apply(run, g, rule, key, point, decision)


_Component = tuple[Group, Rule, ThresholdParams]
_Taken = tuple[Point, Sequence[Point], int]  # a new reading, its context, its index there


def _blood_pressure(run: ReadingsRun, pint: int) -> None:
    """A patient's new BP readings, measurement by measurement (a device at one time), against
    the one alert of their blood pressure."""
    components: dict[str, _Component] = {}
    measurements: dict[tuple[datetime, str], dict[str, _Taken]] = {}
    for metric in BP_COMPONENTS:
        gkey = (pint, metric)
        g = run.groups.get(gkey)
        if g is None or g.rules is None or g.rules.threshold is None:
            continue
        rule = g.rules.threshold
        if run.writer.row((g.patient_id, rule.key, "")) is not None:
            # An alert of the component alone (opened before BP was one alert) runs its course.
            _decide_group(run, gkey, g)
            continue
        p = threshold_params(rule)
        components[metric] = (g, rule, p)
        for n, cluster in enumerate(clusters(g, p)):
            points = run.history.contexts.get((gkey, n)) or [new_point(sr) for sr in cluster]
            for i, point in enumerate(points):
                if point.new:
                    measurements.setdefault((point.at, point.device_id), {})[metric] = (point, points, i)
    if not components:
        return
    patient_id = next(iter(components.values()))[0].patient_id
    key: AlertKey = (patient_id, BP_KEY, "")
    for (at, device_id), taken in sorted(measurements.items()):
        state = run.writer.state(key)
        row = run.writer.row(key)
        decisions = {m: decide(components[m][2], pts, i, state) for m, (_, pts, i) in taken.items()}
        held = row["details"].get("components", ()) if row is not None else ()
        decision = bp_decide(decisions, state, held)
        if decision is None:
            continue
        parts = {m: (components[m][2], pt.value) for m, (pt, _, _) in taken.items()}
        systolic = taken.get(SYSTOLIC)
        value = systolic[0].value if systolic is not None else None
        if isinstance(decision, Keep):
            decision = Keep(decision.at, value, decision.raise_to)
        elif isinstance(decision, Clear):
            decision = Clear(decision.at, value)
        latch = _bp_latch(components, row) if row is not None else None
        _apply_bp(run, components, key, taken, parts, decision, latch, device_id, at)


def _bp_latch(components: Mapping[str, _Component], row: Mapping[str, Any]) -> bool:
    """Whether the blood pressure alert latches: each component out of range during it brings its
    rule's ``latch``, unset meaning the default for the alert's severity (critical latches), and
    the alert latches if any of them would (with none known, every component's rule counts)."""
    held = [m for m in row["details"].get("components", ()) if m in components]
    critical = row["severity"] == "critical"
    return any(
        components[m][2].latch if components[m][2].latch is not None else critical for m in held or components
    )


def _apply_bp(
    run: ReadingsRun,
    components: Mapping[str, _Component],
    key: AlertKey,
    taken: Mapping[str, _Taken],
    parts: Mapping[str, tuple[ThresholdParams, float]],
    decision: Decision,
    latch: bool | None,
    device_id: str,
    at: datetime,
) -> None:
    unit = run.unit(SYSTOLIC)
    late = isinstance(decision, Open) and any(run.late(components[m][0], at) for m in taken)

    def new_alert(d: Open) -> NewAlert:
        out = sorted(m for m, (p, v) in parts.items() if p.out_of_range(v))
        lead = max(out, key=lambda m: (parts[m][0].level(parts[m][1]) == "critical", m == SYSTOLIC))
        first = next(iter(taken.values()))[0]
        value = taken[SYSTOLIC][0].value if SYSTOLIC in taken else first.value
        rule = replace(components[lead][1], key=BP_KEY, metric=BP_METRIC)
        details = {
            "direction": parts[lead][0].direction(parts[lead][1]),
            "values": {m: v for m, (_, v) in parts.items()},
            "components": out,
            "bounds": {m: _bounds(components[m][2]) for m in components},
        }
        full = Open(d.severity, d.onset_at, d.latest_at, value, value, details)
        return opened(full, key[0], rule, "", bp_message(parts), device_id, unit=unit, late=late)

    run.writer.apply(
        key,
        decision,
        new_alert=new_alert,
        raised_message=lambda _severity: bp_message(parts),
        late=late,
        latch=latch,
    )
    if not isinstance(decision, Clear):
        # Every component out of range during the alert holds it until measured back in range.
        run.writer.add_components(key, [m for m, (p, v) in parts.items() if p.out_of_range(v)])


def _apply(run: ReadingsRun, g: Group, rule: Rule, key: AlertKey, point: Point, decision: Decision) -> None:
    p = threshold_params(rule)
    unit = run.unit(g.metric)
    late = isinstance(decision, Open) and run.late(g, point.at)

    def new_alert(d: Open) -> NewAlert:
        text = message(p, g.metric, point.value, d.severity)
        return opened(d, g.patient_id, rule, "", text, point.device_id, unit=unit, late=late)

    def raised(severity: str) -> str:
        return message(p, g.metric, point.value, severity)

    run.writer.apply(key, decision, new_alert=new_alert, raised_message=raised, late=late, latch=p.latch)


KIND: Final = ThresholdKind()

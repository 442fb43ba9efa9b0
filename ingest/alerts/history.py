"""The new readings of a batch grouped per patient and metric, and the history the rules need
around them (debounce runs, rate-of-change windows), fetched in as few queries as possible."""

from __future__ import annotations

import operator
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any, Final
from uuid import UUID

from ingest.alerts.evaluate import Baseline, Point
from ingest.alerts.rulebook import MetricRules, RuleBook
from ingest.alerts.rules import RateParams, Rule, ThresholdParams
from ingest.pipeline import StoredReading

MAX_CONTEXT_ROWS: Final = 5000
CLUSTER_GAP: Final = timedelta(hours=1)
UNSET: Final = object()

GroupKey = tuple[int, str]  # (patient id as an int: hashed in C, unlike UUID; metric)

# Per cluster: `n` readings before, all within [lo, hi] (capped), `n` after.
CONTEXT_SQL: Final = (
    "SELECT g.idx, r.measured_at, r.value, r.device_id FROM unnest("
    " %b::uuid[], %b::text[], %b::timestamptz[], %b::timestamptz[], %b::int[],"
    " %b::int[], %b::int[]) AS g(patient_id, metric, lo, hi, n, news, idx)"
    " CROSS JOIN LATERAL ("
    "  (SELECT measured_at, value, device_id FROM readings x"
    "    WHERE x.patient_id = g.patient_id AND x.metric = g.metric"
    "    AND x.measured_at < g.lo ORDER BY x.measured_at DESC LIMIT g.n)"
    "  UNION ALL"
    "  (SELECT measured_at, value, device_id FROM readings x"
    "    WHERE x.patient_id = g.patient_id AND x.metric = g.metric"
    "    AND x.measured_at >= g.lo AND x.measured_at <= g.hi"
    f"   ORDER BY x.measured_at DESC LIMIT g.news + {MAX_CONTEXT_ROWS})"
    "  UNION ALL"
    "  (SELECT measured_at, value, device_id FROM readings x"
    "    WHERE x.patient_id = g.patient_id AND x.metric = g.metric"
    "    AND x.measured_at > g.hi ORDER BY x.measured_at LIMIT g.n)"
    " ) r"
)
# Per group: the readings in [lo, hi) (capped, newest kept).
WINDOW_SQL: Final = (
    "SELECT g.idx, r.measured_at, r.value FROM unnest("
    " %b::uuid[], %b::text[], %b::timestamptz[], %b::timestamptz[], %b::int[])"
    " AS g(patient_id, metric, lo, hi, idx)"
    " CROSS JOIN LATERAL (SELECT measured_at, value FROM readings x"
    "   WHERE x.patient_id = g.patient_id AND x.metric = g.metric"
    "   AND x.measured_at >= g.lo AND x.measured_at < g.hi"
    f"  ORDER BY x.measured_at DESC LIMIT {MAX_CONTEXT_ROWS}) r"
)


@dataclass
class Group:
    """The new readings of one patient's metric in this batch, in time order."""

    patient_id: UUID
    metric: str
    readings: list[StoredReading]
    prev_newest: Any = UNSET  # newest measured_at stored before this batch, read on demand
    rules: MetricRules | None = None  # set by the plan, with the batch's rules
    out_of_range: bool = False  # any reading out of range under rules.threshold

    @property
    def new_keys(self) -> set[tuple[str, datetime]]:
        return {(sr.reading.device_id, sr.reading.measured_at) for sr in self.readings}


def group_readings(readings: Sequence[StoredReading]) -> dict[GroupKey, Group]:
    groups: dict[GroupKey, Group] = {}
    for sr in readings:
        key = (sr.patient_id.int, sr.reading.metric)
        group = groups.get(key)
        if group is None:
            group = groups[key] = Group(sr.patient_id, sr.reading.metric, [])
        group.readings.append(sr)
    for g in groups.values():
        if len(g.readings) > 1:
            times = [sr.reading.measured_at for sr in g.readings]
            if not all(map(operator.lt, times, islice(times, 1, None))):  # most batches are in order
                g.readings.sort(key=lambda s: (s.reading.measured_at, s.reading.device_id))
    return groups


def plan_history(groups: dict[GroupKey, Group], book: RuleBook, order: list[GroupKey]) -> Plan:
    """The history the rules need (runs around out-of-range readings under debounced thresholds,
    the windows of rate rules), and which groups have an out-of-range reading. Hot: one pass over
    every group of the batch, so it avoids anything per group that it can do per clinic."""
    plan = Plan()
    ctx_rows: list[tuple[UUID, str, datetime, datetime, int, int, int]] = []
    win_rows: list[tuple[UUID, str, datetime, datetime, int]] = []
    own = book.patients_with_rules()
    clinic_of = {p.int: c for p, c in book.clinic_of.items()}
    per_clinic: dict[tuple[str, str], MetricRules | None] = {}
    bands: dict[int, tuple[float, float]] = {}  # by id() of the threshold parameters
    for gkey in order:
        g = groups[gkey]
        pint, metric = gkey
        clinic = clinic_of.get(pint)
        if clinic is None:
            g.rules = None
            continue
        if pint in own:
            rules = book.metric_rules(g.patient_id, metric, clinic)
        else:
            ckey = (clinic, metric)
            if ckey in per_clinic:
                rules = per_clinic[ckey]
            else:
                rules = per_clinic[ckey] = book.metric_rules(g.patient_id, metric, clinic)
        g.rules = rules
        if rules is None:
            continue
        rule = rules.threshold
        if rule is not None:
            p = rule.threshold
            band = bands.get(id(p))
            if band is None:
                band = bands[id(p)] = p.warning_band()
            values = [sr.reading.value for sr in g.readings]  # the extremes decide for the group
            g.out_of_range = min(values) < band[0] or max(values) > band[1]
            if g.out_of_range:
                plan.out_of_range.append(gkey)
                if p.debounced:
                    _plan_context(plan, ctx_rows, gkey, g, p)
        if rules.rates:
            plan.rates[gkey] = list(rules.rates)
            widest = max(reach(r) for r in rules.rates)
            first, last = g.readings[0].reading.measured_at, g.readings[-1].reading.measured_at
            win_rows.append((g.patient_id, g.metric, first - widest, last, len(plan.windows)))
            plan.windows.append(gkey)
    if ctx_rows:
        plan.queries.append((CONTEXT_SQL, [list(c) for c in zip(*ctx_rows, strict=True)]))
    if win_rows:
        plan.queries.append((WINDOW_SQL, [list(c) for c in zip(*win_rows, strict=True)]))
    return plan


def _plan_context(
    plan: Plan,
    rows: list[tuple[UUID, str, datetime, datetime, int, int, int]],
    gkey: GroupKey,
    g: Group,
    p: ThresholdParams,
) -> None:
    span = timedelta(seconds=p.sustained_seconds)
    for n, cluster in enumerate(clusters(g, p)):
        if any(p.out_of_range(sr.reading.value) for sr in cluster):
            first, last = cluster[0].reading.measured_at, cluster[-1].reading.measured_at
            rows.append(
                (
                    g.patient_id,
                    g.metric,
                    first - span,
                    last + span,
                    p.consecutive,
                    len(cluster),
                    len(plan.contexts),
                )
            )
            plan.contexts.append((gkey, n))


def absorb(groups: dict[GroupKey, Group], plan: Plan, results: list[list[tuple[Any, ...]]]) -> History:
    """Turn the history rows into time-ordered points per cluster and per rate window."""
    rows = iter(results)
    history = History()
    if plan.contexts:
        found: dict[int, list[Point]] = defaultdict(list)
        for idx, at, value, device_id in next(rows):
            found[idx].append(Point(at, value, device_id))
        for idx, (gkey, n) in enumerate(plan.contexts):
            new = groups[gkey].new_keys
            points = [Point(pt.at, pt.value, pt.device_id, (pt.device_id, pt.at) in new) for pt in found[idx]]
            history.contexts[(gkey, n)] = sorted(points, key=lambda pt: (pt.at, pt.device_id))
    if plan.windows:
        windows: dict[int, list[Point]] = defaultdict(list)
        for idx, at, value in next(rows):
            windows[idx].append(Point(at, value))
        for idx, gkey in enumerate(plan.windows):
            history.windows[gkey] = sorted(windows[idx], key=lambda pt: pt.at)
    return history


@dataclass
class History:
    contexts: dict[tuple[GroupKey, int], list[Point]] = field(default_factory=dict)
    windows: dict[GroupKey, list[Point]] = field(default_factory=dict)


@dataclass
class Plan:
    out_of_range: list[GroupKey] = field(default_factory=list)  # groups under threshold review
    contexts: list[tuple[GroupKey, int]] = field(default_factory=list)  # (group, cluster) per row
    windows: list[GroupKey] = field(default_factory=list)
    rates: dict[GroupKey, list[Rule]] = field(default_factory=dict)
    queries: list[tuple[str, Sequence[Any]]] = field(default_factory=list)


def clusters(g: Group, p: ThresholdParams) -> list[list[StoredReading]]:
    """New readings split where they are further apart than a run could bridge cheaply."""
    gap = CLUSTER_GAP + timedelta(seconds=p.sustained_seconds)
    clusters: list[list[StoredReading]] = []
    for sr in g.readings:
        if clusters and sr.reading.measured_at - clusters[-1][-1].reading.measured_at <= gap:
            clusters[-1].append(sr)
        else:
            clusters.append([sr])
    return clusters


def reach(rule: Rule) -> timedelta:
    p = rule.params
    assert isinstance(p, RateParams)
    return timedelta(seconds=p.window_seconds + p.grace_seconds)


def extreme(
    window: list[Point], times: list[datetime], lo: datetime, hi: datetime, lowest: bool
) -> Baseline | None:
    """The lowest (or highest) reading measured in [lo, hi); the earliest of equals."""
    best: Point | None = None
    for pt in window[bisect_left(times, lo) : bisect_left(times, hi)]:
        if best is None or (pt.value < best.value if lowest else pt.value > best.value):
            best = pt
    return None if best is None else Baseline(best.value, best.at)


def new_point(sr: StoredReading) -> Point:
    r = sr.reading
    return Point(r.measured_at, r.value, r.device_id, True)

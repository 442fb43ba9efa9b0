"""The history planner: which history the rules need around a batch's new readings (the runs
around out-of-range readings under debounced thresholds, the windows of rate rules), the queries
that fetch it (they travel in the batch's first round trip), and their rows turned into points.

It reads the ``threshold`` and ``rate_of_change`` kinds' parameters from their modules."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any, Final
from uuid import UUID

from ingest.alerts.evaluate import Point
from ingest.alerts.history import Group, GroupKey, History, Plan
from ingest.alerts.kinds.rate_of_change import reach
from ingest.alerts.kinds.threshold import ThresholdParams, clusters, threshold_params
from ingest.alerts.rulebook import MetricRules, RuleBook

MAX_CONTEXT_ROWS: Final = 5000

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


def metric_rules(
    book: RuleBook, patient_id: UUID, metric: str, clinic: str | None = None
) -> MetricRules | None:
    """The enabled threshold (with a bound) and rate rules of a patient's metric; memoised in the
    book per clinic (or per patient, for patients with overrides of their own)."""
    if clinic is None:
        clinic = book.clinic_of.get(patient_id)
        if clinic is None:
            return None
    pint = patient_id.int
    memo = ("metric", pint if pint in book.patients_with_rules() else clinic, metric)
    found: MetricRules | None = book.memo.get(memo)
    if found is None:
        threshold = book.rule(patient_id, f"threshold:{metric}")
        if threshold is not None and not (threshold.enabled and threshold_params(threshold).active):
            threshold = None
        rates = tuple(book.enabled_rules(patient_id, kind="rate_of_change", metric=metric))
        found = book.memo[memo] = MetricRules(threshold, rates)
    return found


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
            rules = metric_rules(book, g.patient_id, metric, clinic)
        else:
            ckey = (clinic, metric)
            if ckey in per_clinic:
                rules = per_clinic[ckey]
            else:
                rules = per_clinic[ckey] = metric_rules(book, g.patient_id, metric, clinic)
        g.rules = rules
        if rules is None:
            continue
        rule = rules.threshold
        if rule is not None:
            p = threshold_params(rule)
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

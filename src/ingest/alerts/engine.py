"""The hook on newly stored readings: evaluates every applicable rule inside the ingest transaction.

Per batch: lock the batch's patients (serialising alert decisions per patient across
transactions and processes) and, in the same round trip, read their clinics, the rules version
and their active alerts; fetch history only where a decision needs it (out-of-range readings under
a debounced rule, weight readings under a rate rule); decide reading by reading in time order;
write the alert changes and their events. Duplicates never get here: the pipeline passes new
readings only. Readings that change nothing (normal, no alert open) cost no query at all.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final
from uuid import UUID

import psycopg

from devices.catalogue import Metric
from ingest.alerts import evaluate, store
from ingest.alerts.evaluate import OUT_OF_RANGE, Baseline, Decision, Open, Point
from ingest.alerts.rules import BatteryParams, RateParams, Rule, StatusParams, ThresholdParams
from ingest.alerts.rules_cache import RuleCache
from ingest.alerts.store import AlertKey, MetricRules, NewAlert, RuleBook
from ingest.alerts.writer import AlertWriter
from ingest.pipeline import StoredReading

logger = logging.getLogger(__name__)

MAX_CONTEXT_ROWS: Final = 5000
CLUSTER_GAP: Final = timedelta(hours=1)
_UNSET: Final = object()

GroupKey = tuple[int, str]  # (patient id as an int: hashed in C, unlike UUID; metric)

# Per cluster: `n` readings before, all within [lo, hi] (capped), `n` after.
_CONTEXT_SQL: Final = (
    "SELECT g.idx, r.measured_at, r.value, r.device_id FROM unnest("
    " %s::uuid[], %s::text[], %s::timestamptz[], %s::timestamptz[], %s::int[],"
    " %s::int[], %s::int[]) AS g(patient_id, metric, lo, hi, n, news, idx)"
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
_WINDOW_SQL: Final = (
    "SELECT g.idx, r.measured_at, r.value FROM unnest("
    " %s::uuid[], %s::text[], %s::timestamptz[], %s::timestamptz[], %s::int[])"
    " AS g(patient_id, metric, lo, hi, idx)"
    " CROSS JOIN LATERAL (SELECT measured_at, value FROM readings x"
    "   WHERE x.patient_id = g.patient_id AND x.metric = g.metric"
    "   AND x.measured_at >= g.lo AND x.measured_at < g.hi"
    f"  ORDER BY x.measured_at DESC LIMIT {MAX_CONTEXT_ROWS}) r"
)


@dataclass
class _Group:
    """The new readings of one patient's metric in this batch, in time order."""

    patient_id: UUID
    metric: str
    readings: list[StoredReading]
    prev_newest: Any = _UNSET  # newest measured_at stored before this batch, read on demand
    rules: MetricRules | None = None  # set by the plan, with the batch's rules
    out_of_range: bool = False  # any reading out of range under rules.threshold

    @property
    def new_keys(self) -> set[tuple[str, datetime]]:
        return {(sr.reading.device_id, sr.reading.measured_at) for sr in self.readings}


@dataclass
class _Measurement:
    """Everything one device measured at one instant (a BP panel, an oximeter spot check)."""

    patient_id: UUID
    device_id: str
    at: datetime
    flags: set[str]
    metrics: list[str]


class AlertEngine:
    """Callable as a :class:`ingest.pipeline.NewReadingsHook`."""

    def __init__(
        self,
        *,
        catalogue: Mapping[str, Metric],
        origin: str,
        observe: Callable[[float], None] | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.origin = origin
        self.rules = RuleCache()
        self.clinics = store.ClinicCache()
        self._observe = observe  # the evaluation-time histogram, if any

    def __call__(self, conn: psycopg.Connection[Any], readings: Sequence[StoredReading]) -> None:
        if not readings:
            return
        started = time.perf_counter()
        _Run(self, conn, readings).execute()
        if self._observe is not None:
            self._observe(time.perf_counter() - started)

    def unit(self, metric: str) -> str:
        found = self.catalogue.get(metric)
        return found.ucum_unit if found is not None else ""


class _Run:
    def __init__(
        self, engine: AlertEngine, conn: psycopg.Connection[Any], readings: Sequence[StoredReading]
    ) -> None:
        self.engine = engine
        self.conn = conn
        groups: dict[GroupKey, _Group] = {}
        for sr in readings:
            key = (sr.patient_id.int, sr.reading.metric)
            group = groups.get(key)
            if group is None:
                group = groups[key] = _Group(sr.patient_id, sr.reading.metric, [])
            group.readings.append(sr)
        for g in groups.values():
            if len(g.readings) > 1:
                g.readings.sort(key=lambda s: (s.reading.measured_at, s.reading.device_id))
        self.groups = groups

    def execute(self) -> None:
        engine, conn = self.engine, self.conn
        patients = list({g.patient_id.int: g.patient_id for g in self.groups.values()}.values())
        order = sorted(self.groups)
        # Plan the history queries with the rules this process holds, so they travel in the same
        # round trip as the locks; if the rules turn out to have changed, plan and fetch again.
        latest = engine.rules.latest
        guess = {p: c for p in patients if (c := engine.clinics.get(p)) is not None}
        plan: _Plan | None = None
        if latest is not None and len(guess) == len(patients):
            plan = self._plan(latest.book(guess), order)
        prepared = store.prepare_batch(conn, patients, engine.clinics, guess, plan.queries if plan else ())
        snapshot = engine.rules.snapshot(conn, prepared.rules_version)
        self.book: RuleBook = snapshot.book(prepared.clinic_of)
        self.writer = AlertWriter(conn, engine.origin, prepared.active)
        results = prepared.extra
        if plan is None or snapshot is not latest or guess != prepared.clinic_of:
            plan = self._plan(self.book, order)
            results = self._fetch(plan.queries)
        self._absorb(plan, results)
        thresholds = self._threshold_work(order)
        missing = {(k[0].int, k[1][8:]) for k in prepared.active if k[1].startswith("missing:")}
        for gkey in order:
            g = self.groups[gkey]
            rule = thresholds.get(gkey)
            if rule is not None:
                self._thresholds(gkey, g, rule)
            for rate_rule in plan.rates.get(gkey, ()):
                self._rates(g, rate_rule, self.windows.get(gkey, []))
            if gkey in missing:
                self._missing(g)
        self._device_flags()
        self.writer.flush()

    def _plan(self, book: RuleBook, order: list[GroupKey]) -> _Plan:
        """The history the rules need: runs around out-of-range readings under debounced
        thresholds, and the windows of rate rules."""
        plan = _Plan()
        ctx_rows: list[tuple[UUID, str, datetime, datetime, int, int, int]] = []
        win_rows: list[tuple[UUID, str, datetime, datetime, int]] = []
        for gkey in order:
            g = self.groups[gkey]
            g.rules = rules = book.metric_rules(g.patient_id, g.metric)
            if rules is None:
                continue
            rule = rules.threshold
            if rule is not None:
                p = rule.threshold
                g.out_of_range = any(p.level(sr.reading.value) in OUT_OF_RANGE for sr in g.readings)
            if rule is not None and g.out_of_range and rule.threshold.debounced:
                p = rule.threshold
                span = timedelta(seconds=p.sustained_seconds)
                for n, cluster in enumerate(_clusters(g, p)):
                    if any(p.level(sr.reading.value) in OUT_OF_RANGE for sr in cluster):
                        first, last = cluster[0].reading.measured_at, cluster[-1].reading.measured_at
                        ctx_rows.append(
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
            if rules.rates:
                plan.rates[gkey] = list(rules.rates)
                reach = max(_reach(r) for r in rules.rates)
                first, last = g.readings[0].reading.measured_at, g.readings[-1].reading.measured_at
                win_rows.append((g.patient_id, g.metric, first - reach, last, len(plan.windows)))
                plan.windows.append(gkey)
        if ctx_rows:
            plan.queries.append((_CONTEXT_SQL, [list(c) for c in zip(*ctx_rows, strict=True)]))
        if win_rows:
            plan.queries.append((_WINDOW_SQL, [list(c) for c in zip(*win_rows, strict=True)]))
        return plan

    def _fetch(self, queries: list[tuple[str, Sequence[Any]]]) -> list[list[tuple[Any, ...]]]:
        if not queries:
            return []
        with self.conn.pipeline():
            cursors = [self.conn.execute(q, p) for q, p in queries]
        return [c.fetchall() for c in cursors]

    def _absorb(self, plan: _Plan, results: list[list[tuple[Any, ...]]]) -> None:
        """Turn the history rows into time-ordered points per cluster and per rate window."""
        rows = iter(results)
        self.contexts: dict[tuple[GroupKey, int], list[Point]] = {}
        self.windows: dict[GroupKey, list[Point]] = {}
        if plan.contexts:
            found: dict[int, list[Point]] = defaultdict(list)
            for idx, at, value, device_id in next(rows):
                found[idx].append(Point(at, value, device_id))
            for idx, (gkey, n) in enumerate(plan.contexts):
                new = self.groups[gkey].new_keys
                points = [
                    Point(pt.at, pt.value, pt.device_id, (pt.device_id, pt.at) in new) for pt in found[idx]
                ]
                self.contexts[(gkey, n)] = sorted(points, key=lambda pt: (pt.at, pt.device_id))
        if plan.windows:
            windows: dict[int, list[Point]] = defaultdict(list)
            for idx, at, value in next(rows):
                windows[idx].append(Point(at, value))
            for idx, gkey in enumerate(plan.windows):
                self.windows[gkey] = sorted(windows[idx], key=lambda pt: pt.at)

    def _late(self, g: _Group, at: datetime) -> bool:
        """Was ``at`` measured before the newest reading stored before this batch?"""
        if g.prev_newest is _UNSET:
            g.prev_newest = store.newest_before(self.conn, g.patient_id, g.metric, g.new_keys)
        prev: datetime | None = g.prev_newest
        return prev is not None and at < prev

    # ----------------------------------------------------------------- thresholds

    def _threshold_work(self, order: list[GroupKey]) -> dict[GroupKey, Rule]:
        """Groups whose threshold rule has something to decide: an out-of-range reading, or an
        active alert that a reading might clear or hold."""
        out: dict[GroupKey, Rule] = {}
        active = self.writer.active
        for gkey in order:
            g = self.groups[gkey]
            rule = g.rules.threshold if g.rules is not None else None  # as planned with self.book
            if rule is None:
                continue
            if g.out_of_range or (active and (g.patient_id, rule.key, "") in active):
                out[gkey] = rule
        return out

    def _thresholds(self, gkey: GroupKey, g: _Group, rule: Rule) -> None:
        p = rule.threshold
        key: AlertKey = (g.patient_id, rule.key, "")
        for n, cluster in enumerate(_clusters(g, p)):
            points = self.contexts.get((gkey, n)) or [_point(sr) for sr in cluster]
            for i, point in enumerate(points):
                if point.new:
                    decision = evaluate.threshold(p, points, i, self.writer.state(key))
                    if decision is not None:
                        self._apply_threshold(g, rule, key, point, decision)

    def _apply_threshold(
        self, g: _Group, rule: Rule, key: AlertKey, point: Point, decision: Decision
    ) -> None:
        p = rule.threshold
        unit = self.engine.unit(g.metric)
        late = isinstance(decision, Open) and self._late(g, point.at)

        def new_alert(d: Open) -> NewAlert:
            return NewAlert(
                patient_id=g.patient_id,
                rule=rule,
                subject="",
                severity=d.severity,
                message=evaluate.threshold_message(p, g.metric, point.value, unit, d.severity),
                onset_at=d.onset_at,
                latest_at=d.latest_at,
                value=d.value,
                last_value=d.last_value,
                unit=unit,
                device_id=point.device_id,
                late=late,
                details={**d.details, "late": late},
            )

        def raised(severity: str) -> str:
            return evaluate.threshold_message(p, g.metric, point.value, unit, severity)

        self.writer.apply(key, decision, new_alert=new_alert, raised_message=raised, late=late)

    # ----------------------------------------------------------------- rate of change

    def _rates(self, g: _Group, rule: Rule, window: list[Point]) -> None:
        p = rule.params
        assert isinstance(p, RateParams)
        key: AlertKey = (g.patient_id, rule.key, "")
        unit = self.engine.unit(g.metric)
        times = [pt.at for pt in window]
        reach = _reach(rule)
        for sr in g.readings:
            r = sr.reading
            base = _extreme(window, times, r.measured_at - reach, r.measured_at, p.direction == "rise")
            decision = evaluate.rate(
                p, Point(r.measured_at, r.value, r.device_id, True), base, self.writer.state(key)
            )
            if decision is None:
                continue
            change = 0.0
            if base is not None:
                change = r.value - base.value if p.direction == "rise" else base.value - r.value
            message = evaluate.rate_message(p, g.metric, change, unit)
            late = isinstance(decision, Open) and self._late(g, r.measured_at)

            def new_alert(
                d: Open, message: str = message, late: bool = late, device: str = r.device_id
            ) -> NewAlert:
                return NewAlert(
                    patient_id=g.patient_id,
                    rule=rule,
                    subject="",
                    severity=d.severity,
                    message=message,
                    onset_at=d.onset_at,
                    latest_at=d.latest_at,
                    value=d.value,
                    last_value=d.last_value,
                    unit=unit,
                    device_id=device,
                    late=late,
                    details={**d.details, "late": late},
                )

            def raised(_severity: str, message: str = message) -> str:
                return message

            self.writer.apply(key, decision, new_alert=new_alert, raised_message=raised, late=late)

    # ----------------------------------------------------------------- missing data

    def _missing(self, g: _Group) -> None:
        key: AlertKey = (g.patient_id, f"missing:{g.metric}", "")
        row = self.writer.row(key)
        if row is None:
            return
        newest = g.readings[-1].reading
        if newest.measured_at > row["latest_at"]:
            self.writer.clear(key, evaluate.Clear(newest.measured_at, newest.value), note="data arrived")

    # ----------------------------------------------------------------- device status, battery

    def _device_flags(self) -> None:
        watched = {
            (k[0], k[2])
            for k, row in self.writer.active.items()
            if row["kind"] in ("device_status", "low_battery")
        }
        measurements: dict[tuple[UUID, str, datetime], _Measurement] = {}
        for g in self.groups.values():
            for sr in g.readings:
                r = sr.reading
                if not r.status and (sr.patient_id, r.device_id) not in watched:
                    continue
                mkey = (sr.patient_id, r.device_id, r.measured_at)
                m = measurements.get(mkey)
                if m is None:
                    m = measurements[mkey] = _Measurement(
                        sr.patient_id, r.device_id, r.measured_at, set(), []
                    )
                m.flags.update(r.status)
                m.metrics.append(r.metric)
        if not measurements:
            return
        status_keys = self.book.keys(kind="device_status")
        battery_keys = self.book.keys(kind="low_battery")
        for m in sorted(measurements.values(), key=lambda m: (m.patient_id.bytes, m.device_id, m.at)):
            for key_name in status_keys:
                self._status(m, key_name)
            for key_name in battery_keys:
                self._battery_flag(m, key_name)

    def _status(self, m: _Measurement, key_name: str) -> None:
        rule = self.book.rule(m.patient_id, key_name)
        if rule is None or not rule.enabled:
            return
        p = rule.params
        assert isinstance(p, StatusParams)
        key: AlertKey = (m.patient_id, key_name, m.device_id)
        decision = evaluate.flags(p.flags, p.severity, p.auto_resolve, m.at, m.flags, self.writer.state(key))
        self._apply_flags(m, rule, key, decision, "reports")

    def _battery_flag(self, m: _Measurement, key_name: str) -> None:
        rule = self.book.rule(m.patient_id, key_name)
        if rule is None or not rule.enabled:
            return
        p = rule.params
        assert isinstance(p, BatteryParams)
        key: AlertKey = (m.patient_id, key_name, m.device_id)
        row = self.writer.row(key)
        by_flag = row is None or row["details"].get("source") == "flag"
        decision = evaluate.flags(p.flags, p.severity, by_flag, m.at, m.flags, self.writer.state(key))
        if isinstance(decision, Open):
            decision = replace(decision, details={**decision.details, "source": "flag"})
        self._apply_flags(m, rule, key, decision, "battery low:")

    def _apply_flags(self, m: _Measurement, rule: Rule, key: AlertKey, decision: Decision, verb: str) -> None:
        if decision is None:
            return
        late = isinstance(decision, Open) and any(
            self._late(self.groups[(m.patient_id.int, metric)], m.at) for metric in m.metrics
        )

        def new_alert(d: Open) -> NewAlert:
            shown = ", ".join(d.details.get("flags", []))
            return NewAlert(
                patient_id=m.patient_id,
                rule=rule,
                subject=m.device_id,
                severity=d.severity,
                message=f"device {m.device_id} {verb} {shown}",
                onset_at=d.onset_at,
                latest_at=d.latest_at,
                device_id=m.device_id,
                late=late,
                details={**d.details, "late": late},
            )

        self.writer.apply(
            key,
            decision,
            new_alert=new_alert,
            raised_message=lambda _severity: f"device {m.device_id} {verb}",
            late=late,
            clear_note="device no longer reports it",
        )


@dataclass
class _Plan:
    contexts: list[tuple[GroupKey, int]] = field(default_factory=list)  # (group, cluster) per row
    windows: list[GroupKey] = field(default_factory=list)
    rates: dict[GroupKey, list[Rule]] = field(default_factory=dict)
    queries: list[tuple[str, Sequence[Any]]] = field(default_factory=list)


def _clusters(g: _Group, p: ThresholdParams) -> list[list[StoredReading]]:
    """New readings split where they are further apart than a run could bridge cheaply."""
    gap = CLUSTER_GAP + timedelta(seconds=p.sustained_seconds)
    clusters: list[list[StoredReading]] = []
    for sr in g.readings:
        if clusters and sr.reading.measured_at - clusters[-1][-1].reading.measured_at <= gap:
            clusters[-1].append(sr)
        else:
            clusters.append([sr])
    return clusters


def _reach(rule: Rule) -> timedelta:
    p = rule.params
    assert isinstance(p, RateParams)
    return timedelta(seconds=p.window_seconds + p.grace_seconds)


def _extreme(
    window: list[Point], times: list[datetime], lo: datetime, hi: datetime, lowest: bool
) -> Baseline | None:
    """The lowest (or highest) reading measured in [lo, hi); the earliest of equals."""
    best: Point | None = None
    for pt in window[bisect_left(times, lo) : bisect_left(times, hi)]:
        if best is None or (pt.value < best.value if lowest else pt.value > best.value):
            best = pt
    return None if best is None else Baseline(best.value, best.at)


def _point(sr: StoredReading) -> Point:
    r = sr.reading
    return Point(r.measured_at, r.value, r.device_id, True)

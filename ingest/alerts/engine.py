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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from devices.catalogue import Metric
from ingest.alerts import evaluate, history, store
from ingest.alerts.evaluate import Decision, Open, Point
from ingest.alerts.history import (
    UNSET,
    Group,
    GroupKey,
    Plan,
    absorb,
    clusters,
    group_readings,
    new_point,
    plan_history,
)
from ingest.alerts.rulebook import RuleBook
from ingest.alerts.rules import BatteryParams, RateParams, Rule, StatusParams
from ingest.alerts.rules_cache import RuleCache
from ingest.alerts.store import AlertKey, NewAlert
from ingest.alerts.writer import AlertWriter
from ingest.pipeline import StoredReading

logger = logging.getLogger(__name__)


@dataclass
class _Measurement:
    """Everything one device measured at one instant (a BP panel, an oximeter spot check)."""

    patient_id: UUID
    device_id: str
    at: datetime
    flags: set[str]
    metrics: list[str]
    battery_level: int | None = None


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
        self.groups = group_readings(readings)

    def execute(self) -> None:
        engine, conn = self.engine, self.conn
        patients = list({g.patient_id.int: g.patient_id for g in self.groups.values()}.values())
        order = sorted(self.groups)
        # Plan the history queries with the rules this process holds, so they travel in the same
        # round trip as the locks; if the rules turn out to have changed, plan and fetch again.
        latest = engine.rules.latest
        guess = engine.clinics.known(patients)
        plan: Plan | None = None
        if latest is not None and len(guess) == len(patients):
            plan = plan_history(self.groups, latest.book(guess), order)
        prepared = store.prepare_batch(conn, patients, engine.clinics, guess, plan.queries if plan else ())
        snapshot = engine.rules.snapshot(conn, prepared.rules_version)
        self.book: RuleBook = snapshot.book(prepared.clinic_of)
        self.writer = AlertWriter(conn, engine.origin, prepared.active)
        results = prepared.extra
        if plan is None or snapshot is not latest or guess != prepared.clinic_of:
            plan = plan_history(self.groups, self.book, order)
            results = self._fetch(plan.queries)
        self.history = absorb(self.groups, plan, results)
        # Only groups with something to decide: an out-of-range reading, a rate rule, or an alert
        # open that one of their readings may hold or clear.
        work = set(plan.out_of_range) | set(plan.rates)
        missing: set[GroupKey] = set()
        for pid, rule_key, _ in prepared.active:
            kind, _, metric = rule_key.partition(":")
            if (pid.int, metric) in self.groups:
                (missing if kind == "missing" else work).add((pid.int, metric))
        for gkey in sorted(work | missing):
            g = self.groups[gkey]
            rules = g.rules
            if gkey in work and rules is not None and rules.threshold is not None:
                self._thresholds(gkey, g, rules.threshold)
            for rate_rule in plan.rates.get(gkey, ()):
                self._rates(g, rate_rule, self.history.windows.get(gkey, []))
            if gkey in missing:
                self._missing(g)
        self._device_flags()
        self.writer.flush()

    def _fetch(self, queries: list[tuple[str, Sequence[Any]]]) -> list[list[tuple[Any, ...]]]:
        if not queries:
            return []
        with self.conn.pipeline():
            cursors = [self.conn.execute(q, p) for q, p in queries]
        return [c.fetchall() for c in cursors]

    def _late(self, g: Group, at: datetime) -> bool:
        """Was ``at`` measured before the newest reading stored before this batch?"""
        if g.prev_newest is UNSET:
            g.prev_newest = store.newest_before(self.conn, g.patient_id, g.metric, g.new_keys)
        prev: datetime | None = g.prev_newest
        return prev is not None and at < prev

    # ----------------------------------------------------------------- thresholds

    def _thresholds(self, gkey: GroupKey, g: Group, rule: Rule) -> None:
        p = rule.threshold
        key: AlertKey = (g.patient_id, rule.key, "")
        for n, cluster in enumerate(clusters(g, p)):
            points = self.history.contexts.get((gkey, n)) or [new_point(sr) for sr in cluster]
            for i, point in enumerate(points):
                if point.new:
                    decision = evaluate.threshold(p, points, i, self.writer.state(key))
                    if decision is not None:
                        self._apply_threshold(g, rule, key, point, decision)

    def _apply_threshold(self, g: Group, rule: Rule, key: AlertKey, point: Point, decision: Decision) -> None:
        p = rule.threshold
        unit = self.engine.unit(g.metric)
        late = isinstance(decision, Open) and self._late(g, point.at)

        def new_alert(d: Open) -> NewAlert:
            message = evaluate.threshold_message(p, g.metric, point.value, unit, d.severity)
            return _opened(d, g.patient_id, rule, "", message, point.device_id, unit=unit, late=late)

        def raised(severity: str) -> str:
            return evaluate.threshold_message(p, g.metric, point.value, unit, severity)

        self.writer.apply(key, decision, new_alert=new_alert, raised_message=raised, late=late)

    # ----------------------------------------------------------------- rate of change

    def _rates(self, g: Group, rule: Rule, window: list[Point]) -> None:
        p = rule.params
        assert isinstance(p, RateParams)
        key: AlertKey = (g.patient_id, rule.key, "")
        unit = self.engine.unit(g.metric)
        times = [pt.at for pt in window]
        reach = history.reach(rule)
        for sr in g.readings:
            r = sr.reading
            base = history.extreme(window, times, r.measured_at - reach, r.measured_at, p.direction == "rise")
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
                return _opened(d, g.patient_id, rule, "", message, device, unit=unit, late=late)

            def raised(_severity: str, message: str = message) -> str:
                return message

            self.writer.apply(key, decision, new_alert=new_alert, raised_message=raised, late=late)

    # ----------------------------------------------------------------- missing data

    def _missing(self, g: Group) -> None:
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
                if (
                    not r.status
                    and r.battery_level is None
                    and (not watched or (sr.patient_id, r.device_id) not in watched)
                ):
                    continue
                mkey = (sr.patient_id, r.device_id, r.measured_at)
                m = measurements.get(mkey)
                if m is None:
                    m = measurements[mkey] = _Measurement(
                        sr.patient_id, r.device_id, r.measured_at, set(), []
                    )
                m.flags.update(r.status)
                m.metrics.append(r.metric)
                if r.battery_level is not None:
                    m.battery_level = r.battery_level
        if not measurements:
            return
        status_keys = self.book.keys(kind="device_status")
        battery_keys = self.book.keys(kind="low_battery")
        for m in sorted(measurements.values(), key=lambda m: (m.patient_id.bytes, m.device_id, m.at)):
            for key_name in status_keys:
                self._status(m, key_name)
            for key_name in battery_keys:
                self._battery_flag(m, key_name)
                self._battery_level(m, key_name)

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

    def _battery_level(self, m: _Measurement, key_name: str) -> None:
        """The battery level a reading carried (the scheduler also checks the stored level)."""
        level = m.battery_level
        rule = self.book.rule(m.patient_id, key_name)
        if level is None or rule is None or not rule.enabled:
            return
        p = rule.params
        assert isinstance(p, BatteryParams)
        key: AlertKey = (m.patient_id, key_name, m.device_id)
        row = self.writer.row(key)
        decision: Decision = None
        if row is None:
            if level < p.level_below:
                details = {"source": "level", "battery_level": level}
                decision = Open(p.severity, m.at, m.at, float(level), float(level), details)
        elif row["details"].get("source") == "level":
            if level >= p.level_below + p.hysteresis and m.at > row["latest_at"]:
                decision = evaluate.Clear(m.at, float(level))
            elif level < p.level_below + p.hysteresis:
                decision = evaluate.Keep(m.at, float(level))
        if decision is None:
            return

        def new_alert(d: Open) -> NewAlert:
            message = f"device {m.device_id} battery at {level} %"
            return _opened(d, m.patient_id, rule, m.device_id, message, m.device_id, unit="%")

        self.writer.apply(
            key,
            decision,
            new_alert=new_alert,
            raised_message=lambda _severity: f"device {m.device_id} battery at {level} %",
            clear_note="battery recharged",
        )

    def _apply_flags(self, m: _Measurement, rule: Rule, key: AlertKey, decision: Decision, verb: str) -> None:
        if decision is None:
            return
        late = isinstance(decision, Open) and any(
            self._late(self.groups[(m.patient_id.int, metric)], m.at) for metric in m.metrics
        )

        def new_alert(d: Open) -> NewAlert:
            message = f"device {m.device_id} {verb} {', '.join(d.details.get('flags', []))}"
            return _opened(d, m.patient_id, rule, m.device_id, message, m.device_id, late=late)

        self.writer.apply(
            key,
            decision,
            new_alert=new_alert,
            raised_message=lambda _severity: f"device {m.device_id} {verb}",
            late=late,
            clear_note="device no longer reports it",
        )


def _opened(
    d: Open,
    patient_id: UUID,
    rule: Rule,
    subject: str,
    message: str,
    device_id: str,
    *,
    unit: str | None = None,
    late: bool | None = None,
) -> NewAlert:
    """The alert an ``Open`` decision opens; ``late`` (when the rule tells) is also kept in details."""
    return NewAlert(
        patient_id=patient_id,
        rule=rule,
        subject=subject,
        severity=d.severity,
        message=message,
        onset_at=d.onset_at,
        latest_at=d.latest_at,
        value=d.value,
        last_value=d.last_value,
        unit=unit,
        device_id=device_id,
        late=bool(late),
        details=d.details if late is None else {**d.details, "late": late},
    )

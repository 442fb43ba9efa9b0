"""The hook on newly stored readings: evaluates every applicable rule inside the ingest transaction.

Per batch: lock the batch's patients (serialising alert decisions per patient across
transactions and processes) and, in the same round trip, read their clinics, the rules version
and their active alerts; fetch history only where a decision needs it (out-of-range readings under
a debounced rule, weight readings under a rate rule); decide reading by reading in time order;
write the alert changes and their events. The decisions belong to the rule kinds
(:mod:`ingest.alerts.kinds`): each metric kind picks the groups (a patient's metric) it has work
for and decides them, then each device kind decides per device measurement; the engine never names
a kind. Duplicates never get here: the pipeline passes new
readings only. Readings that change nothing (normal, no alert open) cost no query at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from devices.catalogue import Metric
from ingest.alerts import store
from ingest.alerts.events import EventSink
from ingest.alerts.history import UNSET, Group, GroupKey, History, Plan, group_readings
from ingest.alerts.kinds import REGISTRY, KindRegistry
from ingest.alerts.kinds.base import Measurement
from ingest.alerts.planner import absorb, plan_history
from ingest.alerts.rulebook import RuleBook
from ingest.alerts.rules_cache import RuleCache
from ingest.alerts.writer import AlertWriter
from ingest.pipeline import StoredReading

logger = logging.getLogger(__name__)


class AlertEngine:
    """Callable as a :class:`ingest.pipeline.NewReadingsHook`."""

    def __init__(
        self,
        *,
        catalogue: Mapping[str, Metric],
        origin: str,
        kinds: KindRegistry = REGISTRY,
        observe: Callable[[float], None] | None = None,
        sinks: list[EventSink] | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.sinks: list[EventSink] = [] if sinks is None else sinks  # alert event sinks
        self.origin = origin
        self.kinds = kinds
        self.rules = RuleCache(kinds.models)
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
    """One batch: what a kind's evaluation may use (:class:`ingest.alerts.kinds.base.ReadingsRun`)."""

    book: RuleBook
    writer: AlertWriter
    plan: Plan
    history: History

    def __init__(
        self, engine: AlertEngine, conn: psycopg.Connection[Any], readings: Sequence[StoredReading]
    ) -> None:
        self.engine = engine
        self.conn = conn
        self.groups = group_readings(readings)
        self._alerted: dict[str, set[GroupKey]] = {}

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
        self.book = snapshot.book(prepared.clinic_of)
        self.writer = AlertWriter(conn, engine.origin, prepared.active, engine.sinks)
        results = prepared.extra
        if plan is None or snapshot is not latest or guess != prepared.clinic_of:
            plan = plan_history(self.groups, self.book, order)
            results = self._fetch(plan.queries)
        self.plan = plan
        self.history = absorb(self.groups, plan, results)
        kinds = engine.kinds
        device_kinds = kinds.device_kind_names
        for row in prepared.active.values():
            kind, metric = row["kind"], row["metric"]
            if metric is not None and kind not in device_kinds:
                gkey = (row["patient_id"].int, metric)
                if gkey in self.groups:
                    self._alerted.setdefault(kind, set()).add(gkey)
        # Each metric kind picks the groups it has something to decide for; the groups are then
        # decided in a fixed order, each by the kinds in the registry's order.
        chosen = [(kind, kind.select(self)) for kind in kinds.metric_kinds]
        work: set[GroupKey] = set().union(*(picked for _, picked in chosen))
        for gkey in sorted(work):
            g = self.groups[gkey]
            for kind, picked in chosen:
                if gkey in picked:
                    kind.on_group(self, gkey, g)
        if kinds.device_kinds:
            self._measurements()
        self.writer.flush()

    # ----------------------------------------------------------------- what kinds may use

    def unit(self, metric: str) -> str:
        return self.engine.unit(metric)

    def alerted(self, kind: str) -> set[GroupKey]:
        return self._alerted.get(kind, set())

    def late(self, g: Group, at: datetime) -> bool:
        """Was ``at`` measured before the newest reading stored before this batch?"""
        if g.prev_newest is UNSET:
            g.prev_newest = store.newest_before(self.conn, g.patient_id, g.metric, g.new_keys)
        prev: datetime | None = g.prev_newest
        return prev is not None and at < prev

    # ----------------------------------------------------------------- internals

    def _fetch(self, queries: list[tuple[str, Sequence[Any]]]) -> list[list[tuple[Any, ...]]]:
        if not queries:
            return []
        with self.conn.pipeline():
            cursors = [self.conn.execute(q, p) for q, p in queries]
        return [c.fetchall() for c in cursors]

    def _measurements(self) -> None:
        """Device kinds decide per measurement: readings with status flags or a battery level,
        and every reading of a device with an alert of a device kind open."""
        device_kinds = self.engine.kinds.device_kind_names
        watched = {(k[0], k[2]) for k, row in self.writer.active.items() if row["kind"] in device_kinds}
        measurements: dict[tuple[UUID, str, datetime], Measurement] = {}
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
                    m = measurements[mkey] = Measurement(sr.patient_id, r.device_id, r.measured_at, set(), [])
                m.flags.update(r.status)
                m.metrics.append(r.metric)
                if r.battery_level is not None:
                    m.battery_level = r.battery_level
        if not measurements:
            return
        kinds = self.engine.kinds.device_kinds
        for m in sorted(measurements.values(), key=lambda m: (m.patient_id.bytes, m.device_id, m.at)):
            for kind in kinds:
                kind.on_measurement(self, m)

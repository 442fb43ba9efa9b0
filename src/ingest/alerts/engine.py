"""The hook on newly stored readings: evaluates every applicable rule inside the ingest transaction.

Per batch: lock the (patient, metric) state rows (serialising decisions for a patient's metric
across transactions and processes), load the effective rules and the active alerts, fetch the
readings each rule needs around the new ones, decide reading by reading in time order, write the
alert changes and their events. Duplicates never get here: the pipeline passes new readings only.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final
from uuid import UUID

import psycopg

from devices.catalogue import Metric
from ingest.alerts import evaluate, store
from ingest.alerts.evaluate import Baseline, Open, Point
from ingest.alerts.rules import BatteryParams, RateParams, Rule, StatusParams, ThresholdParams
from ingest.alerts.store import AlertKey, NewAlert
from ingest.alerts.writer import AlertWriter
from ingest.pipeline import StoredReading

logger = logging.getLogger(__name__)

MAX_CONTEXT_ROWS: Final = 5000
CLUSTER_GAP: Final = timedelta(hours=1)

GroupKey = tuple[UUID, str]  # (patient, metric)


@dataclass
class _Group:
    patient_id: UUID
    metric: str
    readings: list[StoredReading]
    prev_newest: datetime | None = None
    points: dict[int, list[Point]] = field(default_factory=dict)  # cluster -> context

    def is_late(self, at: datetime) -> bool:
        return self.prev_newest is not None and at < self.prev_newest


@dataclass
class _Measurement:
    """Everything one device measured at one instant (a BP panel, an oximeter spot check)."""

    patient_id: UUID
    device_id: str
    at: datetime
    flags: set[str]
    late: bool


class AlertEngine:
    """Callable as a :class:`ingest.pipeline.NewReadingsHook`."""

    def __init__(
        self,
        *,
        catalogue: Mapping[str, Metric],
        origin: str,
        observe: Any = None,
    ) -> None:
        self.catalogue = catalogue
        self.origin = origin
        self._observe = observe  # optional callable(seconds) for the evaluation histogram

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
            key = (sr.patient_id, sr.reading.metric)
            if key not in groups:
                groups[key] = _Group(sr.patient_id, sr.reading.metric, [])
            groups[key].readings.append(sr)
        for g in groups.values():
            g.readings.sort(key=lambda s: (s.reading.measured_at, s.reading.device_id))
        self.groups = groups
        self.patients = sorted({sr.patient_id for sr in readings}, key=str)
        self.readings = readings

    def execute(self) -> None:
        prev = store.lock_metric_state(
            self.conn,
            [(g.patient_id, g.metric, g.readings[-1].reading.measured_at) for g in self.groups.values()],
        )
        for key, g in self.groups.items():
            g.prev_newest = prev.get(key)
        self.book = store.load_rule_book(self.conn, self.patients)
        self.writer = AlertWriter(
            self.conn, self.engine.origin, store.active_alerts(self.conn, self.patients)
        )
        thresholds = self._threshold_rules()
        self._fetch_contexts(thresholds)
        rates = self._rate_rules()
        baselines = self._fetch_baselines(rates)
        for gkey in sorted(self.groups, key=lambda k: (str(k[0]), k[1])):
            g = self.groups[gkey]
            rule = thresholds.get(gkey)
            if rule is not None:
                self._thresholds(g, rule)
            for rate_rule in rates.get(gkey, []):
                self._rates(g, rate_rule, baselines)
            self._missing(g)
        self._device_flags()
        self.writer.flush()

    # ----------------------------------------------------------------- thresholds

    def _threshold_rules(self) -> dict[GroupKey, Rule]:
        out: dict[GroupKey, Rule] = {}
        for gkey, g in self.groups.items():
            rule = self.book.rule(g.patient_id, f"threshold:{g.metric}")
            if rule is not None and rule.enabled and rule.threshold.active:
                out[gkey] = rule
        return out

    def _clusters(self, g: _Group, p: ThresholdParams) -> list[list[StoredReading]]:
        gap = CLUSTER_GAP + timedelta(seconds=p.sustained_seconds)
        clusters: list[list[StoredReading]] = []
        for sr in g.readings:
            if clusters and sr.reading.measured_at - clusters[-1][-1].reading.measured_at <= gap:
                clusters[-1].append(sr)
            else:
                clusters.append([sr])
        return clusters

    def _fetch_contexts(self, rules: dict[GroupKey, Rule]) -> None:
        """Fetch the readings around each cluster of new readings that debounce needs."""
        rows: list[tuple[UUID, str, datetime, datetime, int, int, int, int]] = []
        owners: list[tuple[_Group, int]] = []
        for gkey, rule in rules.items():
            g, p = self.groups[gkey], rule.threshold
            for n, cluster in enumerate(self._clusters(g, p)):
                if not p.debounced:
                    g.points[n] = [_point(sr) for sr in cluster]
                    continue
                first, last = cluster[0].reading.measured_at, cluster[-1].reading.measured_at
                late = g.is_late(last)
                span = timedelta(seconds=p.sustained_seconds)
                rows.append(
                    (
                        g.patient_id,
                        g.metric,
                        first - span,
                        last + (span if late else timedelta(0)),
                        max(p.consecutive, 1),
                        p.consecutive if late else 0,
                        len(cluster) + MAX_CONTEXT_ROWS,
                        len(owners),
                    )
                )
                owners.append((g, n))
                g.points[n] = []
        if not rows:
            return
        cols = list(zip(*rows, strict=True))
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT g.idx, r.measured_at, r.value, r.device_id FROM unnest("
                " %s::uuid[], %s::text[], %s::timestamptz[], %s::timestamptz[], %s::int[],"
                " %s::int[], %s::int[], %s::int[]) AS g(patient_id, metric, lo, hi, back, fwd, cap, idx)"
                " CROSS JOIN LATERAL ("
                "  (SELECT measured_at, value, device_id FROM readings x"
                "    WHERE x.patient_id = g.patient_id AND x.metric = g.metric"
                "    AND x.measured_at < g.lo ORDER BY x.measured_at DESC LIMIT g.back)"
                "  UNION ALL"
                "  (SELECT measured_at, value, device_id FROM readings x"
                "    WHERE x.patient_id = g.patient_id AND x.metric = g.metric"
                "    AND x.measured_at >= g.lo AND x.measured_at <= g.hi"
                "    ORDER BY x.measured_at DESC LIMIT g.cap)"
                "  UNION ALL"
                "  (SELECT measured_at, value, device_id FROM readings x"
                "    WHERE x.patient_id = g.patient_id AND x.metric = g.metric"
                "    AND x.measured_at > g.hi ORDER BY x.measured_at LIMIT g.fwd)"
                " ) r",
                [list(c) for c in cols],
            )
            fetched = cur.fetchall()
        new_keys = {
            (g.patient_id, g.metric): {(sr.reading.device_id, sr.reading.measured_at) for sr in g.readings}
            for g, _ in owners
        }
        for idx, at, value, device_id in fetched:
            g, n = owners[idx]
            is_new = (device_id, at) in new_keys[(g.patient_id, g.metric)]
            g.points[n].append(Point(at, value, device_id, is_new))
        for g, n in owners:
            g.points[n].sort(key=lambda pt: (pt.at, pt.device_id))

    def _thresholds(self, g: _Group, rule: Rule) -> None:
        p = rule.threshold
        key: AlertKey = (g.patient_id, rule.key, "")
        unit = self.engine.unit(g.metric)
        clinic = self.book.clinic_of[g.patient_id]
        for points in g.points.values():
            for i, point in enumerate(points):
                if not point.new:
                    continue
                late = g.is_late(point.at)

                def new_alert(d: Open, point: Point = point, late: bool = late) -> NewAlert:
                    return NewAlert(
                        clinic_id=clinic,
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

                def raised(sev: str, point: Point = point) -> str:
                    return evaluate.threshold_message(p, g.metric, point.value, unit, sev)

                decision = evaluate.threshold(p, points, i, self.writer.state(key))
                self.writer.apply(key, decision, new_alert=new_alert, raised_message=raised, late=late)

    # ----------------------------------------------------------------- rate of change

    def _rate_rules(self) -> dict[GroupKey, list[Rule]]:
        out: dict[GroupKey, list[Rule]] = defaultdict(list)
        for gkey, g in self.groups.items():
            for key in self.book.keys(kind="rate_of_change", metric=g.metric):
                rule = self.book.rule(g.patient_id, key)
                if rule is not None and rule.enabled:
                    out[gkey].append(rule)
        return out

    def _fetch_baselines(
        self, rules: dict[GroupKey, list[Rule]]
    ) -> dict[tuple[str, UUID, str, datetime], Baseline]:
        """Per (rule, patient, device, new reading time): the extreme reading in the window."""
        rows: list[tuple[UUID, str, datetime, datetime, bool, int]] = []
        owners: list[tuple[str, UUID, str, datetime]] = []
        for gkey, group_rules in rules.items():
            g = self.groups[gkey]
            for rule in group_rules:
                p = rule.params
                assert isinstance(p, RateParams)
                reach = timedelta(seconds=p.window_seconds + p.grace_seconds)
                for sr in g.readings:
                    at = sr.reading.measured_at
                    rows.append((g.patient_id, g.metric, at - reach, at, p.direction == "rise", len(owners)))
                    owners.append((rule.key, g.patient_id, sr.reading.device_id, at))
        if not rows:
            return {}
        cols = list(zip(*rows, strict=True))
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT g.idx, b.value, b.measured_at FROM unnest("
                " %s::uuid[], %s::text[], %s::timestamptz[], %s::timestamptz[], %s::bool[],"
                " %s::int[]) AS g(patient_id, metric, lo, t, rise, idx)"
                " CROSS JOIN LATERAL (SELECT value, measured_at FROM readings x"
                "   WHERE x.patient_id = g.patient_id AND x.metric = g.metric"
                "   AND x.measured_at >= g.lo AND x.measured_at < g.t"
                "   ORDER BY CASE WHEN g.rise THEN x.value ELSE -x.value END, x.measured_at"
                "   LIMIT 1) b",
                [list(c) for c in cols],
            )
            return {owners[idx]: Baseline(value, at) for idx, value, at in cur.fetchall()}

    def _rates(
        self, g: _Group, rule: Rule, baselines: dict[tuple[str, UUID, str, datetime], Baseline]
    ) -> None:
        p = rule.params
        assert isinstance(p, RateParams)
        key: AlertKey = (g.patient_id, rule.key, "")
        unit = self.engine.unit(g.metric)
        clinic = self.book.clinic_of[g.patient_id]
        for sr in g.readings:
            r = sr.reading
            point = Point(r.measured_at, r.value, r.device_id, True)
            base = baselines.get((rule.key, g.patient_id, r.device_id, r.measured_at))
            change = (
                0.0
                if base is None
                else (r.value - base.value if p.direction == "rise" else base.value - r.value)
            )
            message = evaluate.rate_message(p, g.metric, change, unit)
            late = g.is_late(r.measured_at)

            def new_alert(
                d: Open, message: str = message, late: bool = late, device: str = r.device_id
            ) -> NewAlert:
                return NewAlert(
                    clinic_id=clinic,
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

            def raised(_sev: str, message: str = message) -> str:
                return message

            decision = evaluate.rate(p, point, base, self.writer.state(key))
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
        status_keys = self.book.keys(kind="device_status")
        battery_keys = self.book.keys(kind="low_battery")
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
                        sr.patient_id, r.device_id, r.measured_at, set(), False
                    )
                m.flags.update(r.status)
                m.late = m.late or g.is_late(r.measured_at)
        for m in sorted(measurements.values(), key=lambda m: (str(m.patient_id), m.device_id, m.at)):
            for key_name in status_keys:
                self._status(m, key_name)
            for key_name in battery_keys:
                self._battery_flag(m, key_name)

    def _status(self, m: _Measurement, key_name: str) -> None:
        rule = self.book.rule(m.patient_id, key_name)
        key: AlertKey = (m.patient_id, key_name, m.device_id)
        if rule is None or not rule.enabled:
            return
        p = rule.params
        assert isinstance(p, StatusParams)
        decision = evaluate.flags(p.flags, p.severity, p.auto_resolve, m.at, m.flags, self.writer.state(key))
        self._apply_flags(m, rule, key, decision, "reports")

    def _battery_flag(self, m: _Measurement, key_name: str) -> None:
        rule = self.book.rule(m.patient_id, key_name)
        key: AlertKey = (m.patient_id, key_name, m.device_id)
        if rule is None or not rule.enabled:
            return
        p = rule.params
        assert isinstance(p, BatteryParams)
        row = self.writer.row(key)
        by_flag = row is None or row["details"].get("source") == "flag"
        decision = evaluate.flags(p.flags, p.severity, by_flag, m.at, m.flags, self.writer.state(key))
        if isinstance(decision, Open):
            decision = replace(decision, details={**decision.details, "source": "flag"})
        self._apply_flags(m, rule, key, decision, "battery low:")

    def _apply_flags(
        self, m: _Measurement, rule: Rule, key: AlertKey, decision: evaluate.Decision, verb: str
    ) -> None:
        clinic = self.book.clinic_of[m.patient_id]

        def new_alert(d: Open) -> NewAlert:
            shown = ", ".join(d.details.get("flags", []))
            return NewAlert(
                clinic_id=clinic,
                patient_id=m.patient_id,
                rule=rule,
                subject=m.device_id,
                severity=d.severity,
                message=f"device {m.device_id} {verb} {shown}",
                onset_at=d.onset_at,
                latest_at=d.latest_at,
                device_id=m.device_id,
                late=m.late,
                details={**d.details, "late": m.late},
            )

        self.writer.apply(
            key,
            decision,
            new_alert=new_alert,
            raised_message=lambda _sev: f"device {m.device_id} {verb}",
            late=m.late,
            clear_note="device no longer reports it",
        )


def _point(sr: StoredReading) -> Point:
    r = sr.reading
    return Point(r.measured_at, r.value, r.device_id, True)

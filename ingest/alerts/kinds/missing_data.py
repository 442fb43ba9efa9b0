"""``missing_data``: no reading of a metric for longer than its expected cadence plus grace.

Opened by the scheduler's tick (for patients wearing a device now), cleared by the next reading of
the metric. A patient given a cadence for a metric they never measured starts the clock then. A
latched alert (cleared, awaiting review) whose patient goes silent again recurs on the tick.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any, Final
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from pydantic import Field

from devices.display import age_text, display_of
from ingest.alerts import evaluate, store
from ingest.alerts.history import Group, GroupKey
from ingest.alerts.kinds.base import CURRENT_ASSIGNMENTS, DefaultRule, ReadingsRun, RuleKind, TickRun
from ingest.alerts.rulebook import load_rule_book, read_rule_rows
from ingest.alerts.rules import MAX_DAYS, RuleParams, RuleRow, Severity
from ingest.alerts.store import AlertKey, NewAlert

logger = logging.getLogger(__name__)


class MissingParams(RuleParams):
    expected_every_seconds: Annotated[int, Field(ge=60, le=MAX_DAYS)]
    grace_seconds: Annotated[int, Field(ge=0, le=30 * 86400)] = 0
    severity: Severity = "warning"

    @property
    def overdue_after(self) -> int:
        return self.expected_every_seconds + self.grace_seconds


def _daily(metric: str, enabled: bool, description: str | None) -> DefaultRule:
    params = {"expected_every_seconds": 86400, "grace_seconds": 43200, "severity": "warning"}
    return DefaultRule(f"missing:{metric}", enabled, params, metric, description)


DEFAULTS: Final = (
    _daily("body_weight", True, "Daily weight expected"),
    _daily("systolic_bp", True, "Daily blood pressure expected"),
    _daily("spo2", True, "Daily oxygen saturation expected"),
    _daily("blood_glucose", True, "Daily glucose expected"),
    _daily("heart_rate", False, "Off: heart rate comes with BP and SpO2, which have their own rules"),
    _daily("body_temperature", False, "Off: temperature is usually measured when symptomatic"),
    _daily("respiratory_rate", False, None),
    _daily("diastolic_bp", False, "Off: follows systolic"),
    _daily("mean_arterial_pressure", False, "Off: follows systolic"),
    _daily("steps", False, None),
)


class MissingDataKind(RuleKind):
    name = "missing_data"
    order = 30
    params = MissingParams
    scope = "metric"
    label = "no recent data"
    description = "No reading of a metric for longer than its expected cadence plus a grace period."
    tick_counts = ("missing_opened", "missing_recurred")

    def defaults(self) -> Sequence[DefaultRule]:
        return DEFAULTS

    # ------------------------------------------------------------------ new readings clear it

    def select(self, run: ReadingsRun) -> Collection[GroupKey]:
        return run.alerted(self.name)

    def on_group(self, run: ReadingsRun, gkey: GroupKey, g: Group) -> None:
        key: AlertKey = (g.patient_id, f"missing:{g.metric}", "")
        row = run.writer.row(key)
        if row is None:
            return
        newest = g.readings[-1].reading
        if newest.measured_at > row["latest_at"]:
            rule = run.book.rule(g.patient_id, key[1])
            latch = rule.params.latch if rule is not None else None
            run.writer.clear(
                key, evaluate.Clear(newest.measured_at, newest.value), note="data arrived", latch=latch
            )

    # ------------------------------------------------------------------ the tick opens it

    def tick(self, run: TickRun) -> dict[str, int]:
        opened, recurred = self._open_overdue(run)
        return {"missing_opened": opened, "missing_recurred": recurred}

    def _open_overdue(self, run: TickRun) -> tuple[int, int]:
        """Open an alert for each overdue metric, or bring back its latched one (cleared by a
        reading since, awaiting review): what opened, what recurred."""
        conn, writer, now = run.conn, run.writer, run.now
        cutoffs = self._cutoffs(conn, now)
        if not cutoffs:
            return 0, 0
        metrics = sorted(cutoffs)
        with conn.cursor(row_factory=dict_row) as cur:
            # Patients wearing a device now, times the metrics some rule expects; their newest
            # reading comes from the readings index (one probe each).
            cur.execute(
                "WITH assigned AS (" + CURRENT_ASSIGNMENTS + "),"
                " wearing AS (SELECT DISTINCT patient_id FROM assigned WHERE patient_id IS NOT NULL)"
                " SELECT w.patient_id, c.metric, last.measured_at AS last_measured_at,"
                "   coalesce(last.measured_at, t.since) AS ref"
                " FROM wearing w"
                " CROSS JOIN unnest(%(metrics)s::text[], %(cutoffs)s::timestamptz[]) AS c(metric, cutoff)"
                " LEFT JOIN LATERAL (SELECT measured_at FROM readings r"
                "   WHERE r.patient_id = w.patient_id AND r.metric = c.metric"
                "   ORDER BY r.measured_at DESC LIMIT 1) last ON true"
                " LEFT JOIN missing_data_tracking t ON t.patient_id = w.patient_id AND t.metric = c.metric"
                " WHERE coalesce(last.measured_at, t.since) < c.cutoff"
                " AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.patient_id = w.patient_id"
                "   AND a.rule_key = 'missing:' || c.metric AND a.subject = ''"
                "   AND ((a.status <> 'resolved' AND a.cleared_at IS NULL)"
                "     OR a.latest_at = coalesce(last.measured_at, t.since)))"
                " ORDER BY w.patient_id, c.metric",
                {"now": now, "metrics": metrics, "cutoffs": [cutoffs[m] for m in metrics]},
            )
            candidates = cur.fetchall()
        if not candidates:
            return 0, 0
        book = load_rule_book(conn, {c["patient_id"] for c in candidates}, models=run.models)
        opened = recurred = 0
        for c in candidates:
            key_name = f"missing:{c['metric']}"
            rule = book.rule(c["patient_id"], key_name)
            if rule is None or not rule.enabled:
                continue
            p = rule.params
            assert isinstance(p, MissingParams)
            ref: datetime = c["ref"]
            if ref + timedelta(seconds=p.overdue_after) > now:
                continue
            if not _still_missing(conn, c["patient_id"], c["metric"], c["last_measured_at"]):
                continue
            key: AlertKey = (c["patient_id"], key_name, "")
            latched = store.active_alert(conn, key)
            if latched is not None:  # cleared by a reading, awaiting review: silent again
                writer.active[key] = latched
                if writer.recur(key, ref):
                    recurred += 1
                continue
            silent = (now - ref).total_seconds()
            message = (
                f"No {display_of(c['metric']).label.lower()} reading for {age_text(silent)}"
                f" (expected every {evaluate.duration_text(p.expected_every_seconds)})"
            )
            alert = NewAlert(
                patient_id=c["patient_id"],
                rule=rule,
                subject="",
                severity=p.severity,
                message=message,
                onset_at=ref + timedelta(seconds=p.overdue_after),
                latest_at=ref,
                details={
                    "last_measured_at": _iso(c["last_measured_at"]),
                    "expected_every_seconds": p.expected_every_seconds,
                    "overdue_after_seconds": p.overdue_after,
                },
            )
            if writer.open(key, alert):
                opened += 1
        return opened, recurred

    def _cutoffs(self, conn: psycopg.Connection[Any], now: datetime) -> dict[str, datetime]:
        """Per metric, a reference time before which a patient may be overdue (a lower bound: the
        shortest cadence and grace any rule row sets; each candidate is then checked exactly)."""
        rows = read_rule_rows(conn, "WHERE kind = %s", (self.name,))
        metric_of = {r.key: r.metric for r in rows if r.source == "default" and r.metric is not None}
        enabled: set[str] = set()
        every: dict[str, int] = {}
        grace: dict[str, int] = {}
        for row in rows:
            metric = metric_of.get(row.key)
            if metric is None:
                continue
            if row.enabled is True:
                enabled.add(metric)
            for name, found in (("expected_every_seconds", every), ("grace_seconds", grace)):
                value = row.params.get(name)
                if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                    found[metric] = min(found.get(metric, value), value)
        return {m: now - timedelta(seconds=every.get(m, 60) + grace.get(m, 0)) for m in sorted(enabled)}

    # ------------------------------------------------------------------ configuration

    def after_patient_override(self, conn: psycopg.Connection[Any], patient_id: UUID, base: RuleRow) -> None:
        if base.metric is not None:
            # Start the missing-data clock for a metric the patient has never sent.
            conn.execute(
                "INSERT INTO missing_data_tracking (patient_id, metric) VALUES (%s, %s)"
                " ON CONFLICT DO NOTHING",
                (patient_id, base.metric),
            )


def _still_missing(
    conn: psycopg.Connection[Any], patient_id: UUID, metric: str, last: datetime | None
) -> bool:
    """Take the patient's alert lock (without waiting: a busy patient is checked next tick) and
    make sure no reading arrived since the candidate query looked."""
    row = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (store.lock_key(patient_id),)).fetchone()
    if row is None or not row[0]:
        return False
    row = conn.execute(
        "SELECT max(measured_at) FROM readings WHERE patient_id = %s AND metric = %s",
        (patient_id, metric),
    ).fetchone()
    newest = row[0] if row else None
    return newest is None or (last is not None and newest <= last)


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


KIND: Final = MissingDataKind()

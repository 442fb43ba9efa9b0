"""Time-driven alerts: missing data, low battery (device level), unacknowledged-critical escalation.

Every service process runs a scheduler; a transaction-scoped advisory lock lets one tick run at a
time across processes, and the unique index on active alerts backs it up. A tick takes ``now`` as
an argument (the database clock by default) so it can be driven deterministically.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from ingest.alerts import evaluate, store
from ingest.alerts.events import PendingEvent
from ingest.alerts.public import ALERT_COLUMNS
from ingest.alerts.rulebook import RULE_COLUMNS, load_rule_book, rule_row
from ingest.alerts.rules import BatteryParams, MissingParams
from ingest.alerts.store import NewAlert
from ingest.alerts.writer import AlertWriter

logger = logging.getLogger(__name__)

SCHEDULER_LOCK: Final = 0x52504D5F5343484E  # "RPM_SCHN": one tick at a time across processes

# Devices assigned to a patient at %(now)s: the newest assignment of each device up to then.
_CURRENT_ASSIGNMENTS: Final = """
SELECT DISTINCT ON (a.device_id) a.device_id, a.patient_id
FROM device_assignments a WHERE a.since <= %(now)s
ORDER BY a.device_id, a.since DESC
"""


@dataclass(frozen=True, slots=True)
class TickResult:
    ran: bool
    missing_opened: int = 0
    battery_opened: int = 0
    battery_resolved: int = 0
    escalated: int = 0
    events: int = 0


class Scheduler:
    def __init__(
        self,
        pool: ConnectionPool,
        *,
        origin: str,
        interval_s: float,
        escalate_after_s: int,
        escalation_max_level: int,
    ) -> None:
        self.pool = pool
        self.origin = origin
        self.interval_s = interval_s
        self.escalate_after = timedelta(seconds=escalate_after_s)
        self.escalation_max_level = escalation_max_level
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- running

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="alert-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
            except psycopg.Error as exc:
                logger.warning("alert scheduler tick failed (%s); retrying next tick", type(exc).__name__)
            except Exception:
                logger.exception("alert scheduler tick failed")

    # ----------------------------------------------------------------- one tick

    def tick(self, now: datetime | None = None) -> TickResult:
        with self.pool.connection() as conn, conn.transaction():
            row = conn.execute("SELECT pg_try_advisory_xact_lock(%s), now()", (SCHEDULER_LOCK,)).fetchone()
            assert row is not None
            if not row[0]:
                return TickResult(ran=False)
            at: datetime = now or row[1]
            writer = AlertWriter(conn, self.origin, {})
            missing = self._missing(conn, writer, at)
            opened, resolved = self._battery(conn, writer, at)
            escalated = self._escalate(conn, writer, at)
            events = writer.flush()
        if events:
            logger.debug("scheduler tick wrote %d events", len(events))
        return TickResult(True, missing, opened, resolved, escalated, len(events))

    def _missing(self, conn: psycopg.Connection[Any], writer: AlertWriter, now: datetime) -> int:
        cutoffs = _missing_cutoffs(conn, now)
        if not cutoffs:
            return 0
        metrics = sorted(cutoffs)
        with conn.cursor(row_factory=dict_row) as cur:
            # Patients wearing a device now, times the metrics some rule expects; their newest
            # reading comes from the readings index (one probe each).
            cur.execute(
                "WITH assigned AS (" + _CURRENT_ASSIGNMENTS + "),"
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
                "   AND (a.status <> 'resolved' OR a.latest_at = coalesce(last.measured_at, t.since)))"
                " ORDER BY w.patient_id, c.metric",
                {"now": now, "metrics": metrics, "cutoffs": [cutoffs[m] for m in metrics]},
            )
            candidates = cur.fetchall()
        if not candidates:
            return 0
        book = load_rule_book(conn, {c["patient_id"] for c in candidates})
        opened = 0
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
            silent = int((now - ref).total_seconds())
            message = (
                f"no {c['metric']} reading for {_silence(silent)}"
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
            if writer.open((c["patient_id"], key_name, ""), alert):
                opened += 1
        return opened

    def _battery(self, conn: psycopg.Connection[Any], writer: AlertWriter, now: datetime) -> tuple[int, int]:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "WITH assigned AS (" + _CURRENT_ASSIGNMENTS + ")"
                " SELECT d.id AS device_id, d.battery_level, x.patient_id"
                " FROM devices d JOIN assigned x ON x.device_id = d.id"
                " WHERE x.patient_id IS NOT NULL AND d.battery_level IS NOT NULL",
                {"now": now},
            )
            devices = cur.fetchall()
            cur.execute(
                f"SELECT {ALERT_COLUMNS} FROM alerts WHERE kind = 'low_battery'"
                " AND status <> 'resolved' AND details->>'source' = 'level' FOR UPDATE"
            )
            level_alerts = {(r["patient_id"], r["rule_key"], r["subject"]): r for r in cur.fetchall()}
        book = load_rule_book(conn, {d["patient_id"] for d in devices} | {k[0] for k in level_alerts})
        writer.active.update(level_alerts)
        opened = resolved = 0
        seen: set[tuple[UUID, str, str]] = set()
        for d in devices:
            for key_name in book.keys(kind="low_battery"):
                key = (d["patient_id"], key_name, d["device_id"])
                seen.add(key)
                rule = book.rule(d["patient_id"], key_name)
                if rule is None:
                    continue
                p = rule.params
                assert isinstance(p, BatteryParams)
                level: int = d["battery_level"]
                active = key in level_alerts
                if active and level >= p.level_below + p.hysteresis:
                    writer.clear(key, evaluate.Clear(now, float(level)), note="battery recharged")
                    resolved += 1
                elif not active and rule.enabled and level < p.level_below:
                    if store.active_alert(conn, key) is not None:
                        continue  # already open from a reading's flag
                    alert = NewAlert(
                        patient_id=d["patient_id"],
                        rule=rule,
                        subject=d["device_id"],
                        severity=p.severity,
                        message=f"device {d['device_id']} battery at {level} %",
                        onset_at=now,
                        latest_at=now,
                        value=float(level),
                        unit="%",
                        device_id=d["device_id"],
                        details={"source": "level", "battery_level": level},
                    )
                    if writer.open(key, alert):
                        opened += 1
        for key in level_alerts.keys() - seen:
            writer.clear(key, evaluate.Clear(now, None), note="device no longer assigned")
            resolved += 1
        return opened, resolved

    def _escalate(self, conn: psycopg.Connection[Any], writer: AlertWriter, now: datetime) -> int:
        if self.escalation_max_level <= 0:
            return 0
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "UPDATE alerts SET escalation_level = escalation_level + 1, escalated_at = %(now)s,"
                " updated_at = now()"
                " WHERE status = 'open' AND severity = 'critical'"
                " AND escalation_level < %(max)s"
                " AND coalesce(escalated_at, critical_since, opened_at) <= %(due)s"
                f" RETURNING {ALERT_COLUMNS}",
                {"now": now, "max": self.escalation_max_level, "due": now - self.escalate_after},
            )
            rows = cur.fetchall()
        for row in rows:
            writer.events.append(
                PendingEvent(
                    "escalated",
                    row,
                    actor="system",
                    note=f"critical alert unacknowledged; escalation level {row['escalation_level']}",
                )
            )
        return len(rows)


def _missing_cutoffs(conn: psycopg.Connection[Any], now: datetime) -> dict[str, datetime]:
    """Per metric, a reference time before which a patient may be overdue (a lower bound: the
    shortest cadence and grace any rule row sets; each candidate is then checked exactly)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT {RULE_COLUMNS} FROM alert_rules WHERE kind = 'missing_data'")
        rows = [rule_row(r) for r in cur.fetchall()]
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


def _silence(seconds: int) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} d"
    if seconds >= 3600:
        return f"{seconds // 3600} h"
    return f"{max(seconds // 60, 1)} min"


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None

"""``low_battery``: a device's battery is low, from a reading's flag or its battery level.

On new readings: the flags a measurement carries and the level it reports. On the scheduler's
tick: the level stored for each assigned device (a device that stopped sending is still seen).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Annotated, Final
from uuid import UUID

from psycopg.rows import dict_row
from pydantic import Field

from ingest.alerts import evaluate, store
from ingest.alerts.evaluate import Decision, Open
from ingest.alerts.kinds.base import (
    CURRENT_ASSIGNMENTS,
    DefaultRule,
    Measurement,
    ReadingsRun,
    RuleKind,
    TickRun,
    apply_flags,
    opened,
)
from ingest.alerts.public import ALERT_COLUMNS
from ingest.alerts.rulebook import load_rule_book
from ingest.alerts.rules import Flag, Rule, RuleParams, Severity
from ingest.alerts.store import AlertKey, NewAlert

logger = logging.getLogger(__name__)


class BatteryParams(RuleParams):
    flags: Annotated[list[Flag], Field(max_length=32)] = []
    level_below: Annotated[int, Field(ge=0, le=100)] = 20
    hysteresis: Annotated[int, Field(ge=0, le=100)] = 10
    severity: Severity = "warning"


DEFAULTS: Final = (
    DefaultRule(
        "battery:low",
        True,
        {
            "flags": ["battery_low", "low_battery", "device_battery_low"],
            "level_below": 20,
            "hysteresis": 10,
            "severity": "warning",
        },
        description="Low battery from a reading flag or the device battery level",
    ),
)


class LowBatteryKind(RuleKind):
    name = "low_battery"
    order = 50
    params = BatteryParams
    scope = "device"
    label = "low battery"
    description = "A device reports a low battery, by a status flag or by its battery level."
    tick_counts = ("battery_opened", "battery_resolved")

    def defaults(self) -> Sequence[DefaultRule]:
        return DEFAULTS

    # ------------------------------------------------------------------ new readings

    def on_measurement(self, run: ReadingsRun, m: Measurement) -> None:
        for rule in run.book.enabled_rules(m.patient_id, kind=self.name):
            _by_flag(run, m, rule)
            _by_level(run, m, rule)

    # ------------------------------------------------------------------ the tick

    def tick(self, run: TickRun) -> dict[str, int]:
        conn, writer, now = run.conn, run.writer, run.now
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "WITH assigned AS (" + CURRENT_ASSIGNMENTS + ")"
                " SELECT d.id AS device_id, d.battery_level, x.patient_id"
                " FROM devices d JOIN assigned x ON x.device_id = d.id"
                " WHERE x.patient_id IS NOT NULL AND d.battery_level IS NOT NULL",
                {"now": now},
            )
            devices = cur.fetchall()
            cur.execute(
                f"SELECT {ALERT_COLUMNS} FROM alerts WHERE kind = %s"
                " AND status <> 'resolved' AND details->>'source' = 'level' FOR UPDATE",
                (self.name,),
            )
            level_alerts = {(r["patient_id"], r["rule_key"], r["subject"]): r for r in cur.fetchall()}
        book = load_rule_book(
            conn, {d["patient_id"] for d in devices} | {k[0] for k in level_alerts}, models=run.models
        )
        writer.active.update(level_alerts)
        opened_n = resolved = 0
        seen: set[tuple[UUID, str, str]] = set()
        for d in devices:
            for key_name in book.keys(kind=self.name):
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
                    done = writer.clear(
                        key, evaluate.Clear(now, float(level)), note="battery recharged", latch=p.latch
                    )
                    if done == "resolved":  # a latching alert is only marked cleared
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
                        opened_n += 1
        for key in level_alerts.keys() - seen:
            gone = book.rule(key[0], key[1])
            latch = gone.params.latch if gone is not None else None
            done = writer.clear(key, evaluate.Clear(now, None), note="device no longer assigned", latch=latch)
            if done == "resolved":
                resolved += 1
        return {"battery_opened": opened_n, "battery_resolved": resolved}


def _by_flag(run: ReadingsRun, m: Measurement, rule: Rule) -> None:
    p = rule.params
    assert isinstance(p, BatteryParams)
    key: AlertKey = (m.patient_id, rule.key, m.device_id)
    row = run.writer.row(key)
    by_flag = row is None or row["details"].get("source") == "flag"
    decision = evaluate.flags(p.flags, p.severity, by_flag, m.at, m.flags, run.writer.state(key))
    if isinstance(decision, Open):
        decision = replace(decision, details={**decision.details, "source": "flag"})
    apply_flags(run, m, rule, key, decision, "battery low:")


def _by_level(run: ReadingsRun, m: Measurement, rule: Rule) -> None:
    """The battery level a reading carried (the tick also checks the stored level)."""
    level = m.battery_level
    if level is None:
        return
    p = rule.params
    assert isinstance(p, BatteryParams)
    key: AlertKey = (m.patient_id, rule.key, m.device_id)
    row = run.writer.row(key)
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
        return opened(d, m.patient_id, rule, m.device_id, message, m.device_id, unit="%")

    run.writer.apply(
        key,
        decision,
        new_alert=new_alert,
        raised_message=lambda _severity: f"device {m.device_id} battery at {level} %",
        clear_note="battery recharged",
        latch=rule.params.latch,
    )


KIND: Final = LowBatteryKind()

"""Applies decisions to the alerts of one transaction and records the events they cause.

Latching: when the condition of an alert clears while nobody has acknowledged it, a latching alert
(the rule's ``latch``; unset, a critical alert latches and a warning does not) stays open with
``cleared_at`` set and a ``cleared`` event, and keeps escalating; should the condition come back
before someone looks, the same alert carries on (``recurred``). An acknowledged alert whose
condition clears is resolved, as is a non-latching one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import psycopg

from ingest.alerts import store
from ingest.alerts.evaluate import AlertState, Clear, Decision, Keep, Open
from ingest.alerts.events import EventSink, PendingEvent, write_events
from ingest.alerts.store import AlertKey, NewAlert

logger = logging.getLogger(__name__)

NewAlertFactory = Callable[[Open], NewAlert]
MessageFactory = Callable[[str], str]


class AlertWriter:
    """Holds the active alerts of the patients in hand and turns decisions into SQL + events."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        origin: str,
        active: dict[AlertKey, dict[str, Any]],
        sinks: Sequence[EventSink] = (),
    ) -> None:
        self.conn = conn
        self.origin = origin
        self.sinks = sinks
        self.active = active
        self.events: list[PendingEvent] = []
        self._touches: dict[UUID, tuple[datetime, float | None]] = {}

    def state(self, key: AlertKey) -> AlertState | None:
        row = self.active.get(key)
        if row is None:
            return None
        return AlertState(severity=row["severity"], latest_at=row["latest_at"])

    def row(self, key: AlertKey) -> dict[str, Any] | None:
        return self.active.get(key)

    def apply(
        self,
        key: AlertKey,
        decision: Decision,
        *,
        new_alert: NewAlertFactory,
        raised_message: MessageFactory,
        late: bool = False,
        clear_note: str = "condition cleared",
        latch: bool | None = None,
    ) -> None:
        if decision is None:
            return
        if isinstance(decision, Open):
            self._open(key, decision, new_alert, raised_message, late)
        elif isinstance(decision, Keep):
            self._keep(key, decision, raised_message)
        else:
            self.clear(key, decision, note=clear_note, latch=latch)

    def _open(
        self,
        key: AlertKey,
        decision: Open,
        new_alert: NewAlertFactory,
        raised_message: MessageFactory,
        late: bool,
    ) -> None:
        if late and store.episode_reported(self.conn, key, decision.latest_at):
            logger.debug("late reading falls in an episode already reported (%s)", key[1])
            return
        if not self.open(key, new_alert(decision)):
            row = self.active.get(key)
            if row is not None:  # opened meanwhile by another transaction: carry on with it
                self._keep(
                    key, Keep(decision.latest_at, decision.last_value, decision.severity), raised_message
                )

    def open(self, key: AlertKey, alert: NewAlert) -> bool:
        """Insert the alert; False when one is already active for the condition (then that one
        is loaded into ``active``, unless it was resolved meanwhile)."""
        row = store.insert_alert(self.conn, alert)
        if row is None:
            found = store.active_alert(self.conn, key)
            if found is not None:
                self.active[key] = found
            return False
        self.active[key] = row
        self.events.append(PendingEvent("opened", row))
        return True

    def _keep(self, key: AlertKey, decision: Keep, raised_message: MessageFactory) -> None:
        row = self.active.get(key)
        if row is None:
            return
        cleared_at = row.get("cleared_at")
        if cleared_at is not None and decision.at > cleared_at:
            row = self._recur(key, row, decision)
        if decision.at > row["latest_at"]:
            self._touches[row["id"]] = (decision.at, decision.value)
            row["latest_at"] = decision.at
            if decision.value is not None:
                row["last_value"] = decision.value
        if decision.raise_to is not None and decision.raise_to != row["severity"]:
            raised = store.raise_severity(
                self.conn, row["id"], decision.raise_to, raised_message(decision.raise_to)
            )
            if raised is not None:
                raised["latest_at"] = max(raised["latest_at"], row["latest_at"])
                raised["last_value"] = row["last_value"]
                self.active[key] = raised
                self.events.append(PendingEvent("severity_raised", raised))

    def add_components(self, key: AlertKey, components: Collection[str]) -> None:
        """Remember in the alert's ``details.components`` the parts of a compound value (blood
        pressure) now out of range, with those out of range before during this alert: the alert
        clears only once every one of them is measured back in range."""
        row = self.active.get(key)
        if row is None:
            return
        details = row.get("details") or {}
        held = set(details.get("components", ()))
        if set(components) <= held:
            return
        merged = sorted(held.union(components))
        if store.set_detail(self.conn, row["id"], "components", merged):
            row["details"] = {**details, "components": merged}

    def recur(self, key: AlertKey, latest_at: datetime) -> bool:
        """The condition of a cleared (latched) alert is back, as a time-driven check saw it:
        the same alert carries on (``recurred``). False when it is not cleared or gone."""
        row = self.active.get(key)
        if row is None or row.get("cleared_at") is None:
            return False
        return self._recur(key, row, Keep(latest_at, None)) is not row

    def _recur(self, key: AlertKey, row: dict[str, Any], decision: Keep) -> dict[str, Any]:
        """The condition of a cleared, unacknowledged alert is back: the same alert carries on."""
        self._touches.pop(row["id"], None)
        at = max(decision.at, row["latest_at"])
        recurred = store.recur(self.conn, row["id"], latest_at=at, last_value=decision.value)
        if recurred is None:
            return row
        self.active[key] = recurred
        self.events.append(PendingEvent("recurred", recurred, actor="system", note="condition back"))
        return recurred

    def clear(
        self, key: AlertKey, decision: Clear, *, note: str, latch: bool | None = None
    ) -> Literal["resolved", "cleared"] | None:
        """The condition cleared: resolve the alert, or mark it cleared when it latches. What
        happened: ``resolved``, ``cleared`` (latched), or None (nothing changed, e.g. marked
        cleared already)."""
        row = self.active.get(key)
        if row is None:
            return None
        latches = latch if latch is not None else row["severity"] == "critical"
        if latches and row["status"] == "open":
            if row.get("cleared_at") is None:
                self._touches.pop(row["id"], None)
                cleared = store.mark_cleared(
                    self.conn,
                    row["id"],
                    cleared_at=decision.at,
                    latest_at=row["latest_at"],
                    last_value=decision.value,
                )
                if cleared is not None:
                    self.active[key] = cleared
                    self.events.append(PendingEvent("cleared", cleared, actor="system", note=note))
                    return "cleared"
            return None
        if latches:
            note = f"{note} after acknowledgement"
        del self.active[key]
        self._touches.pop(row["id"], None)
        resolved = store.auto_resolve(
            self.conn, row["id"], cleared_at=decision.at, note=note, last_value=decision.value
        )
        if resolved is None:
            return None
        self.events.append(PendingEvent("resolved", resolved, actor="system", note=note))
        return "resolved"

    def flush(self) -> list[int]:
        store.touch_alerts(self.conn, self._touches)
        self._touches = {}
        events, self.events = self.events, []
        return write_events(self.conn, events, origin=self.origin, sinks=self.sinks)

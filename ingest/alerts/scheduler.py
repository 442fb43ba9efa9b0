"""Time-driven alerts: the tick steps of the rule kinds that have one (missing data, low battery
by device level, ...) and the escalation of unacknowledged critical alerts.

Every service process runs a scheduler; a transaction-scoped advisory lock lets one tick run at a
time across processes, and the unique index on active alerts backs it up. A tick takes ``now`` as
an argument (the database clock by default) so it can be driven deterministically.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from ingest.alerts.events import EventSink, PendingEvent
from ingest.alerts.kinds import REGISTRY, KindRegistry
from ingest.alerts.kinds.base import TickRun
from ingest.alerts.public import ALERT_COLUMNS
from ingest.alerts.writer import AlertWriter
from ingest.background import BackgroundThread

logger = logging.getLogger(__name__)

SCHEDULER_LOCK: Final = 0x52504D5F5343484E  # "RPM_SCHN": one tick at a time across processes


@dataclass(frozen=True, slots=True)
class TickResult:
    """What one tick did. The kinds' counters (``missing_opened``, ``battery_resolved``...) read
    as attributes too."""

    ran: bool
    counts: Mapping[str, int] = field(default_factory=dict)
    escalated: int = 0
    events: int = 0

    def __getattr__(self, name: str) -> int:
        counts = object.__getattribute__(self, "counts")
        if name in counts:
            found: int = counts[name]
            return found
        raise AttributeError(name)


class Scheduler:
    def __init__(
        self,
        pool: ConnectionPool,
        *,
        origin: str,
        interval_s: float,
        escalate_after_s: int,
        escalation_max_level: int,
        kinds: KindRegistry = REGISTRY,
        sinks: list[EventSink] | None = None,
    ) -> None:
        self.pool = pool
        self.sinks: list[EventSink] = [] if sinks is None else sinks
        self.kinds = kinds
        self.origin = origin
        self.interval_s = interval_s
        self.escalate_after = timedelta(seconds=escalate_after_s)
        self.escalation_max_level = escalation_max_level
        self._background = BackgroundThread("alert-scheduler", self._loop)

    # ----------------------------------------------------------------- running

    def start(self) -> None:
        self._background.start()

    def stop(self) -> None:
        self._background.stop()

    def _loop(self) -> None:
        while not self._background.stopping.wait(self.interval_s):
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
            writer = AlertWriter(conn, self.origin, {}, self.sinks)
            counts = {name: 0 for kind in self.kinds.scheduled for name in kind.tick_counts}
            run = TickRun(conn, writer, at, self.kinds.models)
            for kind in self.kinds.scheduled:
                counts.update(kind.tick(run))
            escalated = self._escalate(conn, writer, at)
            events = writer.flush()
        if events:
            logger.debug("scheduler tick wrote %d events", len(events))
        return TickResult(True, counts, escalated, len(events))

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

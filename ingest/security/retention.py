"""Retention of raw readings (``RPM_READINGS_RETENTION_DAYS``): keep no more than a clinic needs.

With TimescaleDB the database's own job scheduler drops whole chunks past the retention
(``add_retention_policy``; the hourly continuous aggregate keeps its buckets). On plain
PostgreSQL a background thread deletes expired readings in bounded batches, each its own short
transaction, so it never holds long locks or competes with ingest for long.

The audit log is never subject to this retention: it is append-only.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any, Final

import psycopg
from psycopg_pool import PoolTimeout

from ingest.components import Component
from ingest.db import timescale
from ingest.services import Services

logger = logging.getLogger(__name__)

DELETE_BATCH: Final = 5000


def delete_expired_batch(conn: psycopg.Connection[Any], cutoff: datetime, batch: int = DELETE_BATCH) -> int:
    """Delete up to ``batch`` readings measured before ``cutoff``; the number deleted."""
    cur = conn.execute(
        "DELETE FROM readings WHERE ctid = ANY(ARRAY("
        " SELECT ctid FROM readings WHERE measured_at < %s LIMIT %s))",
        (cutoff, batch),
    )
    return cur.rowcount


class RetentionJob:
    """Applies the readings retention: a TimescaleDB policy, or a periodic batched delete."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.days = services.settings.readings_retention_days
        self.interval_s = float(services.settings.retention_interval_s)
        self.batch = DELETE_BATCH
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.uses_timescale = False

    def start(self) -> None:
        with self.services.pool.connection() as conn:
            conn.autocommit = True
            self.uses_timescale = timescale.is_enabled(conn)
            if self.uses_timescale:
                timescale.set_retention(conn, self.days)
                logger.info("readings retention: TimescaleDB policy, %s days", self.days or "unlimited")
                return
        if self.days is None:
            logger.info("readings retention: unlimited")
            return
        logger.info("readings retention: %d days, checked every %.0f s", self.days, self.interval_s)
        self._thread = threading.Thread(target=self._run, name="readings-retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def run_once(self, now: datetime | None = None) -> int:
        """Delete every reading past the retention (batch by batch); the number deleted."""
        if self.days is None or self.uses_timescale:
            return 0
        clock = self.services.pipeline.clock
        cutoff = (now or clock()) - timedelta(days=self.days)
        total = 0
        while not self._stop.is_set():
            with self.services.transaction() as conn:
                deleted = delete_expired_batch(conn, cutoff, self.batch)
            total += deleted
            if deleted < self.batch:
                break
        if total:
            logger.info("readings retention: deleted %d readings measured before %s", total, cutoff)
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except (psycopg.OperationalError, PoolTimeout) as exc:
                logger.warning("readings retention postponed: %s", type(exc).__name__)
            self._stop.wait(self.interval_s)


def retention_component(services: Services) -> Component:
    job = RetentionJob(services)
    return Component(name="readings retention", start=job.start, stop=job.stop, extras={"retention": job})

"""Retention of raw readings (``RPM_READINGS_RETENTION_DAYS``): keep no more than a clinic needs;
and the bounds of the dead-letter table.

With TimescaleDB the database's own job scheduler drops whole chunks past the retention
(``add_retention_policy``; the hourly continuous aggregate keeps its buckets). On plain
PostgreSQL a background thread deletes expired readings in bounded batches, each its own short
transaction, so it never holds long locks or competes with ingest for long.

Dead letters (always by the thread, every ``RPM_RETENTION_INTERVAL_S`` but at least every
:data:`DEAD_LETTER_CHECK_S`): those older than ``RPM_DEAD_LETTER_RETENTION_DAYS`` are deleted,
then the oldest beyond ``RPM_DEAD_LETTER_MAX_ROWS`` rows (with a warning: the cap only bites
when something floods), and the per-key counts of past windows; the row count is the
``rpm_dead_letter_rows`` gauge. Rows a writer holds are skipped, never waited for.

The audit log is never subject to this retention: it is append-only.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import psycopg

from ingest.background import BackgroundThread
from ingest.components import Component
from ingest.db import timescale
from ingest.services import Services
from ingest.store import deadletters

logger = logging.getLogger(__name__)

DELETE_BATCH: Final = 5000
DEAD_LETTER_CHECK_S: Final = 60.0  # the dead-letter bounds are checked at least this often


def delete_expired_batch(conn: psycopg.Connection[Any], cutoff: datetime, batch: int = DELETE_BATCH) -> int:
    """Delete up to ``batch`` readings measured before ``cutoff``; the number deleted."""
    cur = conn.execute(
        "DELETE FROM readings WHERE ctid = ANY(ARRAY("
        " SELECT ctid FROM readings WHERE measured_at < %s LIMIT %s))",
        (cutoff, batch),
    )
    return cur.rowcount


@dataclass(frozen=True, slots=True)
class DeadLetterPrune:
    """What one pass over the dead-letter table did."""

    expired: int  # older than the retention
    over_cap: int  # the oldest beyond the cap
    windows: int  # per-key counts of past windows forgotten
    rows: int  # rows left


class RetentionJob:
    """Applies the readings retention (a TimescaleDB policy, or a periodic batched delete) and
    the dead-letter retention and cap."""

    def __init__(self, services: Services) -> None:
        self.services = services
        settings = services.settings
        self.days = settings.readings_retention_days
        self.interval_s = float(settings.retention_interval_s)
        self.batch = DELETE_BATCH
        self.dead_letter_days = settings.dead_letter_retention_days or None
        self.dead_letter_max_rows = settings.dead_letter_max_rows or None
        self.dead_letter_window_s = settings.dead_letter_window_s
        self.check_s = min(self.interval_s, DEAD_LETTER_CHECK_S)
        self._background = BackgroundThread("retention", self._run)
        self._stop = self._background.stopping
        self.uses_timescale = False

    @property
    def deletes_readings(self) -> bool:
        return self.days is not None and not self.uses_timescale

    def start(self) -> None:
        with self.services.pool.connection() as conn:
            conn.autocommit = True
            self.uses_timescale = timescale.is_enabled(conn)
            if self.uses_timescale:
                timescale.set_retention(conn, self.days)
                logger.info("readings retention: TimescaleDB policy, %s days", self.days or "unlimited")
        if self.deletes_readings:
            logger.info("readings retention: %d days, checked every %.0f s", self.days, self.interval_s)
        elif not self.uses_timescale:
            logger.info("readings retention: unlimited")
        logger.info(
            "dead letters: kept %s days, at most %s rows, checked every %.0f s",
            self.dead_letter_days or "unlimited", self.dead_letter_max_rows or "unlimited",
            self.check_s,
        )
        self._background.start()

    def stop(self) -> None:
        self._background.stop()

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

    def prune_dead_letters(self, now: datetime | None = None) -> DeadLetterPrune:
        """Apply the dead-letter retention, then the cap; forget past windows' counts. Each
        batch is its own short transaction; the summaries of windows still counting are kept."""
        now = now or self.services.pipeline.clock()
        window = timedelta(seconds=self.dead_letter_window_s)
        open_since = deadletters.window_start(now, self.dead_letter_window_s) - window
        expired = 0
        if self.dead_letter_days is not None:
            cutoff = now - timedelta(days=self.dead_letter_days)
            while not self._stop.is_set():
                with self.services.transaction() as conn:
                    deleted = deadletters.delete_expired(conn, cutoff, self.batch)
                expired += deleted
                if deleted < self.batch:
                    break
        with self.services.transaction() as conn:
            windows = deadletters.delete_past_windows(conn, open_since)
            rows = deadletters.count_dead_letters(conn)
        over_cap = 0
        if self.dead_letter_max_rows is not None and rows > self.dead_letter_max_rows:
            excess = rows - self.dead_letter_max_rows
            while over_cap < excess and not self._stop.is_set():
                with self.services.transaction() as conn:
                    deleted = deadletters.delete_oldest(
                        conn, min(self.batch, excess - over_cap), open_since=open_since
                    )
                over_cap += deleted
                if deleted == 0:
                    break
            logger.warning(
                "dead-letter table over its cap of %d rows: deleted the %d oldest"
                " (see GET /v1/dead-letters/summary for what floods it)",
                self.dead_letter_max_rows, over_cap,
            )
        rows -= over_cap
        metrics = self.services.metrics
        metrics.dead_letter_rows.set(rows)
        if expired:
            metrics.dead_letters_deleted.labels("retention").inc(expired)
            logger.info("dead letters: deleted %d received before the retention", expired)
        if over_cap:
            metrics.dead_letters_deleted.labels("cap").inc(over_cap)
        return DeadLetterPrune(expired=expired, over_cap=over_cap, windows=windows, rows=rows)

    def _run(self) -> None:
        next_readings = time.monotonic()
        while not self._stop.is_set():
            try:
                if self.deletes_readings and time.monotonic() >= next_readings:
                    next_readings = time.monotonic() + self.interval_s
                    self.run_once()
                self.prune_dead_letters()
            except psycopg.Error as exc:  # the database away, a statement failing: next round
                logger.warning("retention postponed (%s); retrying next round", type(exc).__name__)
            except Exception:  # never let one round end the thread (and with it the bounds)
                logger.exception("retention round failed; retrying next round")
            self._stop.wait(self.check_s)


def retention_component(services: Services) -> Component:
    job = RetentionJob(services)
    return Component(name="readings retention", start=job.start, stop=job.stop, extras={"retention": job})

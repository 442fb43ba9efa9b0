"""The wired-up parts of a running service, handed to the API and workers (built in runtime.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from ingest.limits import Limits
from ingest.metrics import Metrics
from ingest.pipeline import Envelope, Outcome, Pipeline, Prepared
from ingest.settings import Settings
from ingest.store.deadletters import DeadLetter, DeadLetterWrite, insert_dead_letters

logger = logging.getLogger(__name__)
ReadinessCheck = Callable[[], tuple[bool, str]]
BeforeCommit = Callable[[psycopg.Connection[Any], list[Outcome]], None]


@dataclass
class Services:
    settings: Settings
    pool: ConnectionPool
    pipeline: Pipeline
    metrics: Metrics
    limits: Limits  # the pipeline's rules are ``limits.message``
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection inside a transaction that commits when the block ends cleanly."""
        with self.pool.connection() as conn, conn.transaction():
            yield conn

    @contextmanager
    def pipelined_transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """Like :meth:`transaction`, with BEGIN, the statements and COMMIT sent together (pipeline
        mode): for a few statements that need no answer before the next is sent, one round trip
        instead of three. Errors, the commit's included, are raised when the block ends."""
        with self.pool.connection() as conn, conn.pipeline(), conn.transaction():
            yield conn

    def ingest(
        self,
        source: str,
        envelopes: Sequence[Envelope] | Prepared,
        *,
        refused: Sequence[DeadLetter] = (),
        dead_letter: bool = True,
        before_commit: BeforeCommit | None = None,
        connect_timeout_s: float | None = None,
    ) -> list[Outcome]:
        """The one way in for readings, whatever their source (MQTT, HTTP, dead-letter replay,
        demo history): one transaction, counted under ``source`` after it committed.

        ``envelopes`` go through the pipeline (what it refuses is dead-lettered, unless
        ``dead_letter`` is False: a replay records its result on the dead letter instead);
        ``refused`` are dead letters of messages refused before parsing (an unusable topic, a
        body that is not JSON). All of the transaction's dead letters are written at once, after
        the readings and their hooks, bounded by ``limits.dead_letters`` (beyond it a key's
        letters are counted into its summary row; none: no dead-letter work at all);
        ``before_commit`` writes what must commit with the batch (the
        request's audit row); ``connect_timeout_s`` bounds the wait for a pooled connection
        (None: the pool's own). Raises when the transaction did not commit: nothing counted then.

        ``envelopes`` may come already prepared (:meth:`Pipeline.prepare`, done while an earlier
        batch was in the database): the same batch, parsed.
        """
        started = time.perf_counter()
        prepared = envelopes if isinstance(envelopes, Prepared) else self.pipeline.prepare(envelopes)
        with self.pool.connection(timeout=connect_timeout_s) as conn, conn.transaction():
            letters: list[DeadLetter] = []
            outcomes = self.pipeline.store(conn, prepared, collect=letters) if prepared.envelopes else []
            if not dead_letter:
                letters.clear()  # a replay records its result on the dead letter instead
            letters.extend(refused)
            written = insert_dead_letters(
                conn, letters, received_at=self.pipeline.clock(), limit=self.limits.dead_letters
            )
            if before_commit is not None:
                before_commit(conn, outcomes)
        if outcomes:
            self.metrics.observe(source, outcomes, time.perf_counter() - started)
        if refused:
            self.metrics.messages_dead_lettered.labels(source).inc(len(refused))
        if written.suppressed or written.floods:
            self._report_suppressed(written)
        return outcomes

    def _report_suppressed(self, written: DeadLetterWrite) -> None:
        """After commit: count the letters summarised, and warn once per key and window (the
        key is a device id or a topic, never a patient's)."""
        for source, count in written.suppressed.items():
            self.metrics.dead_letters_suppressed.labels(source).inc(count)
        for flood in written.floods:
            logger.warning(
                "dead letters from %s key %r are over the limit of %d per %d s (window from %s):"
                " further ones in this window are counted into one summary row"
                " (GET /v1/dead-letters/summary)",
                flood.source, flood.key, flood.per_window, flood.window_s,
                flood.window_start.isoformat(),
            )

"""The wired-up parts of a running service, handed to the API and workers (built in runtime.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from ingest.limits import Limits
from ingest.metrics import Metrics
from ingest.pipeline import Envelope, Outcome, Pipeline
from ingest.settings import Settings
from ingest.store.deadletters import DeadLetter, insert_dead_letters

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
        envelopes: Sequence[Envelope],
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
        body that is not JSON); ``before_commit`` writes what must commit with the batch (the
        request's audit row); ``connect_timeout_s`` bounds the wait for a pooled connection
        (None: the pool's own). Raises when the transaction did not commit: nothing counted then.
        """
        started = time.perf_counter()
        with self.pool.connection(timeout=connect_timeout_s) as conn, conn.transaction():
            outcomes = (
                self.pipeline.process(conn, envelopes, dead_letter=dead_letter) if envelopes else []
            )
            insert_dead_letters(conn, refused, received_at=self.pipeline.clock())
            if before_commit is not None:
                before_commit(conn, outcomes)
        if envelopes:
            self.metrics.observe(source, outcomes, time.perf_counter() - started)
        if refused:
            self.metrics.messages_dead_lettered.labels(source).inc(len(refused))
        return outcomes

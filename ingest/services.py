"""The wired-up parts of a running service, handed to the API and workers (built in app.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from ingest.metrics import Metrics
from ingest.pipeline import Envelope, Outcome, Pipeline
from ingest.settings import Settings

ReadinessCheck = Callable[[], tuple[bool, str]]


@dataclass
class Services:
    settings: Settings
    pool: ConnectionPool
    pipeline: Pipeline
    metrics: Metrics
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
        before_commit: Callable[[psycopg.Connection[Any], list[Outcome]], None] | None = None,
    ) -> list[Outcome]:
        """Run envelopes through the pipeline in one transaction; counted after commit.

        ``before_commit`` writes what must commit with the batch (the request's audit row)."""
        started = time.perf_counter()
        with self.transaction() as conn:
            outcomes = self.pipeline.process(conn, envelopes)
            if before_commit is not None:
                before_commit(conn, outcomes)
        self.metrics.observe(source, outcomes, time.perf_counter() - started)
        return outcomes

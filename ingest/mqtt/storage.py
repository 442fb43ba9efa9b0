"""Storing one batch of deliveries in one transaction, and what a failure means.

A transient storage failure (connection lost, pool exhausted, serialization failure, server
shutting down...) is retried with backoff and never turns into a dead letter. Only an error the
data itself provokes (PostgreSQL refusing a value, or a defect raised by the code on this input)
makes the writer store the batch one message at a time and dead-letter the one that still fails.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import Final

import psycopg

from ingest.errors import IngestError
from ingest.mqtt.delivery import SOURCE, Delivery
from ingest.pipeline import Outcome
from ingest.services import Services
from ingest.store.deadletters import DeadLetter, insert_dead_letters

logger = logging.getLogger(__name__)

_MAX_RAW: Final = 1024 * 1024


class Failure(Enum):
    RETRY = "retry"  # the storage is unwell: keep the batch, acknowledge nothing, try again
    ISOLATE = "isolate"  # the data provoked it: find the message and dead-letter it


def classify(exc: BaseException) -> Failure:
    if isinstance(exc, psycopg.DataError | psycopg.IntegrityError):
        return Failure.ISOLATE
    if isinstance(exc, psycopg.Error | IngestError | OSError):
        return Failure.RETRY  # OperationalError, PoolTimeout, InterfaceError, InternalError...
    return Failure.ISOLATE


class BatchStore:
    """Runs deliveries through the pipeline inside one transaction; counts after commit."""

    def __init__(self, services: Services, *, connect_timeout_s: float = 5.0) -> None:
        self.services = services
        self.connect_timeout_s = connect_timeout_s

    def store(self, deliveries: Sequence[Delivery]) -> list[Outcome]:
        """Store, dead-letter poison, commit; raises if the transaction did not commit."""
        started = time.perf_counter()
        envelopes = [d.envelope for d in deliveries if d.refused is None]
        refused = [_letter(d, d.refused) for d in deliveries if d.refused is not None]
        with self.services.pool.connection(timeout=self.connect_timeout_s) as conn, conn.transaction():
            outcomes = self.services.pipeline.process(conn, envelopes)
            insert_dead_letters(conn, refused, received_at=datetime.now(UTC))
        metrics = self.services.metrics
        metrics.observe(SOURCE, outcomes, time.perf_counter() - started)
        if refused:
            metrics.messages_dead_lettered.labels(SOURCE).inc(len(refused))
        return outcomes

    def refuse(self, delivery: Delivery, exc: BaseException) -> None:
        """Dead-letter one delivery the store could not take on its own (own transaction)."""
        reason = f"storage refused this message: {type(exc).__name__}"
        sqlstate = getattr(exc, "sqlstate", None)
        if sqlstate:
            reason += f" (SQLSTATE {sqlstate})"
        with self.services.pool.connection(timeout=self.connect_timeout_s) as conn, conn.transaction():
            insert_dead_letters(conn, [_letter(delivery, reason)], received_at=datetime.now(UTC))
        self.services.metrics.messages_dead_lettered.labels(SOURCE).inc()
        self.services.metrics.mqtt_isolated.inc()


def _letter(delivery: Delivery, reason: str) -> DeadLetter:
    env = delivery.envelope
    raw = env.raw
    if len(raw) > _MAX_RAW:
        raw = raw[:_MAX_RAW]
        reason = f"{reason} (raw bytes truncated to {_MAX_RAW})"
    return DeadLetter(
        source=SOURCE, reason=reason[:2000], raw=raw, topic=env.topic, device_id=env.device_id
    )

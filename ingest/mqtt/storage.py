"""Storing one batch of deliveries through the one ingest function, and what a failure means.

A transient storage failure (connection lost, pool exhausted, serialization failure, server
shutting down...) is retried with backoff and never turns into a dead letter. Only an error the
data itself provokes (PostgreSQL refusing a value, or a defect raised by the code on this input)
makes the writer store the batch one message at a time and dead-letter the one that still fails.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from enum import Enum

import psycopg

from ingest.errors import IngestError
from ingest.mqtt.delivery import SOURCE, Delivery
from ingest.pipeline import Outcome, Prepared
from ingest.services import Services

logger = logging.getLogger(__name__)


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
    """Hands deliveries to :meth:`Services.ingest` (one transaction per batch, counted after
    commit), waiting at most ``connect_timeout_s`` for a connection."""

    def __init__(self, services: Services, *, connect_timeout_s: float = 5.0) -> None:
        self.services = services
        self.connect_timeout_s = connect_timeout_s

    def prepare(self, deliveries: Sequence[Delivery]) -> Prepared:
        """Parse and check the batch (no database): what :meth:`store` then stores."""
        return self.services.pipeline.prepare([d.envelope for d in deliveries if d.refused is None])

    def store(
        self, deliveries: Sequence[Delivery], prepared: Prepared | None = None
    ) -> list[Outcome]:
        """Store, dead-letter poison, commit; raises if the transaction did not commit.

        ``prepared``: :meth:`prepare` of these deliveries, done earlier."""
        refused = [d.envelope.dead_letter(d.refused) for d in deliveries if d.refused is not None]
        return self.services.ingest(
            SOURCE,
            self.prepare(deliveries) if prepared is None else prepared,
            refused=refused,
            connect_timeout_s=self.connect_timeout_s,
        )

    def refuse(self, delivery: Delivery, exc: BaseException) -> None:
        """Dead-letter one delivery the store could not take on its own (own transaction)."""
        reason = f"storage refused this message: {type(exc).__name__}"
        sqlstate = getattr(exc, "sqlstate", None)
        if sqlstate:
            reason += f" (SQLSTATE {sqlstate})"
        self.services.ingest(
            SOURCE,
            [],
            refused=[delivery.envelope.dead_letter(reason)],
            connect_timeout_s=self.connect_timeout_s,
        )
        self.services.metrics.mqtt_isolated.inc()

"""The ORU^R01 sender: claims the ``hl7`` destination's due rows and sends them one by one over the
kept-open MLLP connection, each answered before the next goes (MLLP's original mode).

What each answer means (contract §4): ``AA``/``CA`` sent; ``AE``/``CE``, no answer in time, a
dropped connection or a garbled answer: retried with backoff, the same message with the same
MSH-10; ``AR``/``CR``: failed, with the receiver's text as the reason (an operator requeues it
from ``/v1/exports``). A patient whose message is retried has the rest of their rows in the batch
held back, so their results keep their order; after a transport failure the rest of the batch is
released untouched (it keeps its place in the queue) and the connection is reopened with backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from psycopg_pool import ConnectionPool

from fhir_export.outbox import Delivered
from hl7_export import AckError, MappingError, OruBuilder, Outcome, encode, parse_ack
from ingest.export.outbox.claims import PgClaim, PgOutbox
from ingest.hl7.connection import MllpConnection
from ingest.hl7.errors import DeliveryFailed
from ingest.hl7.reader import HELD_REASON, Hl7Item, held_rows

logger = logging.getLogger(__name__)


@dataclass
class SenderStats:
    """Counts since start (for /metrics and the benchmark)."""

    sent: int = 0
    retried: int = 0
    rejected: int = 0
    held: int = 0
    transport_failures: int = 0
    by_code: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Backoff:
    min_s: float
    max_s: float

    def delay(self, attempts: int) -> float:
        """Before attempt ``attempts + 2``: min, 2·min, 4·min, … capped at max."""
        return float(min(self.max_s, self.min_s * 2 ** min(attempts, 30)))


class Hl7Sender:
    def __init__(
        self,
        outbox: PgOutbox[Hl7Item],
        pool: ConnectionPool,
        connection: MllpConnection,
        builder: OruBuilder,
        *,
        batch_size: int,
        backoff: Backoff,
        sending_facility: str | None = None,
        stopping: Callable[[], bool] = lambda: False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.outbox = outbox
        self.pool = pool
        self.connection = connection
        self.builder = builder
        self.batch_size = batch_size
        self.backoff = backoff
        self.sending_facility = sending_facility
        self.stopping = stopping
        self.clock = clock
        self.stats = SenderStats()

    async def run_once(self) -> tuple[int, bool]:
        """One claim: (rows claimed, whether the transport failed)."""
        with self.outbox.claim(self.batch_size) as claim:
            failed = await self._send_all(claim)
            return len(claim.items), failed

    async def _send_all(self, claim: PgClaim[Hl7Item]) -> bool:
        held: dict[UUID, tuple[str, float]] = {}
        with self.pool.connection() as conn:
            waiting = held_rows(conn, [(entry.id, entry.item.patient_id) for entry in claim.items])
        for entry in claim.items:
            item = entry.item
            if self.stopping():
                return False  # the rest are released as they are
            if entry.id in waiting:  # goes when the older message may have gone
                self.stats.held += 1
                claim.mark_retry([entry.id], HELD_REASON, max(self.backoff.min_s, waiting[entry.id]))
                continue
            if item.patient_id in held:
                reason, delay = held[item.patient_id]
                self.stats.held += 1
                claim.mark_retry([entry.id], reason, delay)
                continue
            try:
                payload = encode(
                    self.builder.build(
                        item.oru, item.control_id, self.clock(),
                        sending_facility=self.sending_facility or item.clinic_id,
                    )
                )  # fmt: skip
            except MappingError as exc:
                claim.mark_parked(entry.id, f"cannot be put into an ORU^R01: {exc}")
                continue
            delay = self.backoff.delay(entry.attempts)
            try:
                answer = parse_ack(await self.connection.exchange(payload))
                # An empty MSA-2 (some engines leave it out) answers the message in hand: after any
                # failure the connection is new, so no late answer to another message can arrive.
                if answer.control_id not in ("", item.control_id):
                    raise AckError(f"the ACK names MSH-10 {answer.control_id[:40]!r}, not {item.control_id}")
            except (DeliveryFailed, AckError) as exc:
                await self.connection.close()
                self.stats.transport_failures += 1
                self.stats.retried += 1
                logger.warning(
                    "HL7 message %s not acknowledged (%s); retrying in %.0f s", item.control_id, exc, delay
                )
                claim.mark_retry([entry.id], str(exc), delay)
                return True
            self.stats.by_code[answer.code] = self.stats.by_code.get(answer.code, 0) + 1
            if answer.outcome is Outcome.ACCEPTED:
                self.stats.sent += 1
                claim.mark_sent([Delivered(entry.id, item.control_id, True)])
            elif answer.outcome is Outcome.REJECTED:
                self.stats.rejected += 1
                claim.mark_parked(entry.id, f"{answer.code}: {answer.text or 'rejected by the receiver'}")
            else:
                self.stats.retried += 1
                reason = f"{answer.code}: {answer.text or 'the receiver could not take it now'}"
                claim.mark_retry([entry.id], reason, delay)
                held[item.patient_id] = (f"{HELD_REASON} ({item.control_id}: {reason})"[:2000], delay)
        return False

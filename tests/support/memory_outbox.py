"""An in-process implementation of the ``fhir_export.outbox.Outbox`` protocol.

It keeps the same contract as the database outbox (exclusive claims, changes recorded only
when the claim ends normally) so the delivery loop's tests need no database; the PostgreSQL
outbox has its own tests against a real server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from fhir_export.models import ExportItem
from fhir_export.outbox import Delivered, OutboxItem


@dataclass
class Row:
    item: ExportItem
    state: str = "pending"  # pending | sent | parked
    attempts: int = 0
    due: float = 0.0
    reason: str | None = None
    reference: str | None = None
    created: bool | None = None
    sends: int = 0


@dataclass
class MemoryClaim:
    outbox: MemoryOutbox
    claimed: list[OutboxItem[ExportItem]]
    sent: list[Delivered] = field(default_factory=list)
    parked: list[tuple[int, str]] = field(default_factory=list)
    retries: list[tuple[list[int], str, float]] = field(default_factory=list)

    @property
    def items(self) -> Sequence[OutboxItem[ExportItem]]:
        return self.claimed

    def mark_sent(self, delivered: Sequence[Delivered]) -> None:
        self.sent.extend(delivered)

    def mark_parked(self, item_id: int, reason: str) -> None:
        self.parked.append((item_id, reason))

    def mark_retry(self, item_ids: Sequence[int], reason: str, delay_s: float) -> None:
        self.retries.append((list(item_ids), reason, delay_s))


class MemoryOutbox:
    def __init__(self) -> None:
        self.rows: dict[int, Row] = {}
        self.now = 0.0
        self._claimed: set[int] = set()
        self._lock = threading.Lock()
        self.retry_delays: list[float] = []

    def add(self, item: ExportItem) -> int:
        with self._lock:
            row_id = len(self.rows) + 1
            self.rows[row_id] = Row(item)
            return row_id

    def make_due(self) -> None:
        for row in self.rows.values():
            row.due = 0.0

    def count(self, state: str) -> int:
        return sum(1 for row in self.rows.values() if row.state == state)

    @contextmanager
    def claim(self, limit: int) -> Iterator[MemoryClaim]:
        with self._lock:
            ids = [
                row_id
                for row_id, row in sorted(self.rows.items())
                if row.state == "pending" and row.due <= self.now and row_id not in self._claimed
            ][:limit]
            self._claimed.update(ids)
        claim = MemoryClaim(self, [OutboxItem(i, self.rows[i].item, self.rows[i].attempts) for i in ids])
        try:
            yield claim
        finally:
            with self._lock:
                self._claimed.difference_update(ids)
        with self._lock:  # only when the block ended normally
            for change in claim.sent:
                row = self.rows[change.id]
                row.state, row.reference, row.created = "sent", change.reference, change.created
            for item_id, reason in claim.parked:
                self.rows[item_id].state = "parked"
                self.rows[item_id].reason = reason
            for item_ids, reason, delay in claim.retries:
                self.retry_delays.append(delay)
                for item_id in item_ids:
                    retried = self.rows[item_id]
                    retried.attempts += 1
                    retried.reason = reason
                    retried.due = self.now + delay

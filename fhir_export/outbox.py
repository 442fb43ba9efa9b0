"""The outbox interface a delivery loop works against (the FHIR export's, and any other
destination's: ``T`` is what a claimed row becomes for that destination, ``ExportItem`` here).

The service implements it on its database: rows are written in the same transaction as the
readings, and ``claim`` takes a batch so that no other worker can send the same rows until the
claim ends (PostgreSQL: ``FOR UPDATE SKIP LOCKED`` inside the claim's transaction). Leaving the
``with`` block normally records what the ``mark_*`` calls said; leaving it with an exception
records nothing and frees the rows, which then go out again (conditional create keeps that safe).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class OutboxItem(Generic[T]):
    """One claimed row: what to export (what the destination's reader made of the row) and how
    many attempts failed before."""

    id: int
    item: T
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Delivered:
    """A row the EHR has: ``created`` False when it already had it (a retry found it)."""

    id: int
    reference: str | None
    created: bool


class Claim(Protocol[T]):
    @property
    def items(self) -> Sequence[OutboxItem[T]]: ...

    def mark_sent(self, delivered: Sequence[Delivered]) -> None:
        """The destination holds these rows' items: never send them again."""
        ...

    def mark_parked(self, item_id: int, reason: str) -> None:
        """Refused for good (bad content): keep with the reason until an operator requeues."""
        ...

    def mark_retry(self, item_ids: Sequence[int], reason: str, delay_s: float) -> None:
        """Not delivered this time: count an attempt, try again after ``delay_s`` seconds."""
        ...


class Outbox(Protocol[T]):
    def claim(self, limit: int) -> AbstractContextManager[Claim[T]]:
        """Claim up to ``limit`` due rows, oldest first, exclusively for this worker."""
        ...

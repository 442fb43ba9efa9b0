"""The outbox's claims on PostgreSQL: :class:`PgOutbox` implements :class:`fhir_export.outbox.Outbox`.

A claim picks due rows with ``FOR UPDATE SKIP LOCKED`` and gives them a lease (``claim_token`` +
``claimed_until``) in a short transaction; the rows are then sent with no transaction open.
:meth:`PgOutbox.renew` extends the leases of open claims, so a live worker keeps its rows however
slow the EHR is, and a crashed worker's rows come back when the lease runs out. What the worker
decided is written when the claim ends, only for rows still held by that claim.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from fhir_export.models import DeviceInfo, ExportItem
from fhir_export.outbox import Delivered, OutboxItem
from ingest.export.outbox.rows import MAX_REASON, WAITING_REASON, readings_of, row_readings

logger = logging.getLogger(__name__)

_CLAIM: Final = f"""
WITH due AS (
    SELECT id FROM fhir_outbox
    WHERE status = 'pending' AND next_attempt_at <= now()
      AND (claimed_until IS NULL OR claimed_until < now())
    ORDER BY next_attempt_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE fhir_outbox o
SET claim_token = %(token)s, claimed_by = %(worker)s,
    claimed_until = now() + make_interval(secs => %(lease)s)
FROM due, patients p, devices d
WHERE o.id = due.id AND p.id = o.patient_id AND d.id = o.device_id
RETURNING o.id, o.device_id, o.measured_at, {row_readings("o")},
          o.attempts, p.fhir_patient_id,
          d.type, d.manufacturer, d.model, d.serial
"""
_CLEAR_CLAIM: Final = "claim_token = NULL, claimed_by = NULL, claimed_until = NULL, updated_at = now()"
_TO_WAITING: Final = (
    f"UPDATE fhir_outbox SET status = 'waiting', last_error = %s, {_CLEAR_CLAIM} WHERE id = ANY(%s)"
)
_PARK_NOW: Final = (
    f"UPDATE fhir_outbox SET status = 'failed', last_error = %s, attempts = attempts + 1, {_CLEAR_CLAIM}"
    " WHERE id = %s"
)
_MARK_SENT: Final = f"""
UPDATE fhir_outbox o
SET status = 'sent', sent_at = now(), fhir_reference = v.reference, created_in_ehr = v.created,
    last_error = NULL, {_CLEAR_CLAIM}
FROM jsonb_to_recordset(%(rows)s::jsonb) AS v(id bigint, reference text, created boolean)
WHERE o.id = v.id AND o.claim_token = %(token)s
"""
_MARK_PARKED: Final = f"""
UPDATE fhir_outbox o
SET status = 'failed', last_error = v.reason, attempts = o.attempts + 1, {_CLEAR_CLAIM}
FROM jsonb_to_recordset(%(rows)s::jsonb) AS v(id bigint, reason text)
WHERE o.id = v.id AND o.claim_token = %(token)s
"""
_MARK_RETRY: Final = f"""
UPDATE fhir_outbox o
SET last_error = v.reason, attempts = o.attempts + 1,
    next_attempt_at = now() + make_interval(secs => v.delay_s), {_CLEAR_CLAIM}
FROM jsonb_to_recordset(%(rows)s::jsonb) AS v(id bigint, reason text, delay_s float8)
WHERE o.id = v.id AND o.claim_token = %(token)s
"""
_RELEASE: Final = f"UPDATE fhir_outbox SET {_CLEAR_CLAIM} WHERE claim_token = %s"
_RENEW: Final = (
    "UPDATE fhir_outbox SET claimed_until = now() + make_interval(secs => %s) WHERE claim_token = ANY(%s)"
)


@dataclass
class PgClaim:
    """The rows of one claim and what the worker decided for each (last word wins)."""

    token: uuid.UUID
    items: list[OutboxItem]
    decisions: dict[int, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    def mark_sent(self, delivered: Sequence[Delivered]) -> None:
        for d in delivered:
            self.decisions[d.id] = ("sent", {"id": d.id, "reference": d.reference, "created": d.created})

    def mark_parked(self, item_id: int, reason: str) -> None:
        self.decisions[item_id] = ("parked", {"id": item_id, "reason": reason[:MAX_REASON]})

    def mark_retry(self, item_ids: Sequence[int], reason: str, delay_s: float) -> None:
        for item_id in item_ids:
            self.decisions[item_id] = (
                "retry",
                {"id": item_id, "reason": reason[:MAX_REASON], "delay_s": max(0.0, delay_s)},
            )


class PgOutbox:
    """``fhir_export.outbox.Outbox`` on the ``fhir_outbox`` table."""

    def __init__(self, pool: ConnectionPool, *, worker: str, lease_s: float = 60.0) -> None:
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        self._pool = pool
        self.worker = worker[:200]
        self.lease_s = lease_s
        self._open: set[uuid.UUID] = set()
        self._lock = threading.Lock()

    @contextmanager
    def claim(self, limit: int) -> Iterator[PgClaim]:
        token = uuid.uuid4()
        with self._lock:
            self._open.add(token)
        try:
            claim = PgClaim(token, self._take(token, limit))
            try:
                yield claim
            except BaseException:
                self._release(token)
                raise
            self._finish(claim)
        finally:
            with self._lock:
                self._open.discard(token)

    def renew(self, conn: psycopg.Connection[Any] | None = None) -> int:
        """Extend the lease of every open claim; return how many rows it covers.

        ``conn`` (autocommit) lets the caller renew on a connection of its own, so a busy pool
        can never delay a renewal past the lease.
        """
        with self._lock:
            tokens = list(self._open)
        if not tokens:
            return 0
        if conn is not None:
            return conn.execute(_RENEW, (self.lease_s, tokens)).rowcount
        with self._pool.connection() as pooled, pooled.transaction():
            return pooled.execute(_RENEW, (self.lease_s, tokens)).rowcount

    def _take(self, token: uuid.UUID, limit: int) -> list[OutboxItem]:
        params = {"limit": limit, "token": token, "worker": self.worker, "lease": self.lease_s}
        items: list[OutboxItem] = []
        with self._pool.connection() as conn, conn.transaction():
            rows = conn.execute(_CLAIM, params).fetchall()
            unlinked: list[int] = []
            for row_id, device_id, measured_at, stored, attempts, fhir_id, *device in rows:
                if fhir_id is None:
                    unlinked.append(row_id)
                    continue
                try:
                    readings = readings_of(device_id, measured_at, stored)
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    logger.error("outbox row %d is unreadable (%s): parked", row_id, type(exc).__name__)
                    conn.execute(_PARK_NOW, (f"stored row is unreadable: {type(exc).__name__}", row_id))
                    continue
                info = DeviceInfo(device_id, *device)
                items.append(OutboxItem(row_id, ExportItem(readings, fhir_id, info), attempts))
            if unlinked:
                conn.execute(_TO_WAITING, (WAITING_REASON, unlinked))
        items.sort(key=lambda i: i.id)
        return items

    def _finish(self, claim: PgClaim) -> None:
        by_kind: dict[str, list[dict[str, Any]]] = {"sent": [], "parked": [], "retry": []}
        for kind, values in claim.decisions.values():
            by_kind[kind].append(values)
        held = {item.id for item in claim.items}
        undecided = held - set(claim.decisions)
        with self._pool.connection() as conn, conn.transaction():
            updated = 0
            for kind, statement in (("sent", _MARK_SENT), ("parked", _MARK_PARKED), ("retry", _MARK_RETRY)):
                if by_kind[kind]:
                    rows = Jsonb(by_kind[kind])
                    updated += conn.execute(statement, {"rows": rows, "token": claim.token}).rowcount
            if undecided:
                conn.execute(_RELEASE, (claim.token,))
        if updated < len(claim.decisions):
            logger.warning(
                "%d of %d outbox rows were no longer held by this claim (lease lost); left as they are",
                len(claim.decisions) - updated, len(claim.decisions),
            )  # fmt: skip

    def _release(self, token: uuid.UUID) -> None:
        try:
            with self._pool.connection() as conn, conn.transaction():
                conn.execute(_RELEASE, (token,))
        except psycopg.Error as exc:  # the lease runs out on its own
            logger.warning("could not release an outbox claim (%s); it expires with its lease", exc)

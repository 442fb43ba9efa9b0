"""The outbox's claims on PostgreSQL: :class:`PgOutbox` implements :class:`fhir_export.outbox.Outbox`
for one destination.

Each claimed row is handed to the destination's *reader* (inside the claim's transaction), which
turns the :class:`ClaimedRow` into what that destination's worker sends: the FHIR export's reader
(:func:`fhir_reader`) makes an :class:`~fhir_export.models.ExportItem`; the HL7 and DICOM exports
have their own. A reader raises :class:`Unlinked` to make the row wait for the patient's link to the
EHR, and ``KeyError``/``TypeError``/``ValueError`` when the row is unreadable (it is parked, with the
reason).

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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Generic, TypeVar
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from devices.models import Reading
from fhir_export.models import DeviceInfo, ExportItem
from fhir_export.outbox import Delivered, OutboxItem
from ingest.ecg.store import strip_for_export
from ingest.export.destinations import FHIR
from ingest.export.flag_rows import read_flag
from ingest.export.outbox.rows import MAX_REASON, WAITING_REASON, readings_of, row_readings
from ingest.export.profiles import clinic_profile

T = TypeVar("T")

logger = logging.getLogger(__name__)

_CLAIM: Final = f"""
WITH due AS (
    SELECT id FROM outbox
    WHERE destination = %(destination)s AND status = 'pending' AND next_attempt_at <= now()
      AND (claimed_until IS NULL OR claimed_until < now())
    ORDER BY next_attempt_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox o
SET claim_token = %(token)s, claimed_by = %(worker)s,
    claimed_until = now() + make_interval(secs => %(lease)s)
FROM due, patients p, devices d
WHERE o.id = due.id AND p.id = o.patient_id AND d.id = o.device_id
RETURNING o.id, o.destination, o.kind, o.export_key, o.item_ref, o.clinic_id, o.patient_id,
          o.device_id, o.measured_at,
          CASE WHEN o.kind IN ('ecg', 'flag') THEN NULL ELSE {row_readings("o")} END,
          o.attempts, p.mrn, p.display_name, p.fhir_patient_id,
          d.type, d.manufacturer, d.model, d.serial
"""
_CLEAR_CLAIM: Final = "claim_token = NULL, claimed_by = NULL, claimed_until = NULL, updated_at = now()"
_TO_WAITING: Final = (
    f"UPDATE outbox SET status = 'waiting', last_error = %s, {_CLEAR_CLAIM} WHERE id = ANY(%s)"
)
_PARK_NOW: Final = (
    f"UPDATE outbox SET status = 'failed', last_error = %s, attempts = attempts + 1, {_CLEAR_CLAIM}"
    " WHERE id = %s"
)
_MARK_SENT: Final = f"""
UPDATE outbox o
SET status = 'sent', sent_at = now(), fhir_reference = v.reference, created_in_ehr = v.created,
    last_error = NULL, {_CLEAR_CLAIM}
FROM jsonb_to_recordset(%(rows)s::jsonb) AS v(id bigint, reference text, created boolean)
WHERE o.id = v.id AND o.claim_token = %(token)s
"""
_MARK_PARKED: Final = f"""
UPDATE outbox o
SET status = 'failed', last_error = v.reason, attempts = o.attempts + 1, {_CLEAR_CLAIM}
FROM jsonb_to_recordset(%(rows)s::jsonb) AS v(id bigint, reason text)
WHERE o.id = v.id AND o.claim_token = %(token)s
"""
_MARK_RETRY: Final = f"""
UPDATE outbox o
SET last_error = v.reason, attempts = o.attempts + 1,
    next_attempt_at = now() + make_interval(secs => v.delay_s), {_CLEAR_CLAIM}
FROM jsonb_to_recordset(%(rows)s::jsonb) AS v(id bigint, reason text, delay_s float8)
WHERE o.id = v.id AND o.claim_token = %(token)s
"""
_RELEASE: Final = f"UPDATE outbox SET {_CLEAR_CLAIM} WHERE claim_token = %s"
_RENEW: Final = (
    "UPDATE outbox SET claimed_until = now() + make_interval(secs => %s) WHERE claim_token = ANY(%s)"
)


@dataclass(frozen=True, slots=True)
class PatientInfo:
    """The patient a claimed row belongs to, as the service knows them now."""

    mrn: str
    display_name: str
    fhir_patient_id: str | None


@dataclass(frozen=True, slots=True)
class ClaimedRow:
    """One claimed outbox row, before the destination's reader makes its item of it.

    ``readings`` is empty for kinds that keep no copy in the row (``ecg``, ``flag``: see
    ``item_ref``).
    """

    id: int
    destination: str
    kind: str
    export_key: str
    item_ref: str | None
    clinic_id: str
    patient_id: UUID
    device_id: str
    measured_at: datetime
    readings: tuple[Reading, ...]
    attempts: int
    patient: PatientInfo
    device: DeviceInfo


class Unlinked(Exception):
    """Raised by a reader: the row cannot go until the patient is linked; it waits."""

    def __init__(self, reason: str = WAITING_REASON) -> None:
        super().__init__(reason)
        self.reason = reason


RowReader = Callable[[psycopg.Connection[Any], ClaimedRow], T]
"""Turns a claimed row into what a destination's worker sends (called in the claim's transaction)."""


def fhir_reader(conn: psycopg.Connection[Any], row: ClaimedRow) -> ExportItem:
    """The FHIR export's item: the row's readings, for the patient's FHIR Patient."""
    if row.patient.fhir_patient_id is None:
        raise Unlinked()
    if row.kind == "ecg":  # the strip is kept in its own table (ingest.ecg.store)
        strip = strip_for_export(conn, row.item_ref)
        return ExportItem((), row.patient.fhir_patient_id, row.device, strip=strip)
    if row.kind == "flag":  # an alert as a Flag: read from the alert (ingest.export.flag_rows)
        return ExportItem((), row.patient.fhir_patient_id, row.device, flag=read_flag(conn, row.item_ref))
    if not row.readings:
        raise ValueError(f"no reader for outbox rows of kind {row.kind!r}")
    profile = clinic_profile(conn, row.clinic_id)  # the clinic's Observation profiles
    return ExportItem(row.readings, row.patient.fhir_patient_id, row.device, profile=profile)


@dataclass
class PgClaim(Generic[T]):
    """The rows of one claim and what the worker decided for each (last word wins)."""

    token: uuid.UUID
    items: list[OutboxItem[T]]
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


class PgOutbox(Generic[T]):
    """``fhir_export.outbox.Outbox`` on the ``outbox`` table, for one destination's rows."""

    def __init__(
        self,
        pool: ConnectionPool,
        *,
        worker: str,
        destination: str = FHIR,
        reader: RowReader[T] = fhir_reader,  # type: ignore[assignment]
        lease_s: float = 60.0,
    ) -> None:
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        self._pool = pool
        self.worker = worker[:200]
        self.destination = destination
        self._reader = reader
        self.lease_s = lease_s
        self._open: set[uuid.UUID] = set()
        self._lock = threading.Lock()

    @contextmanager
    def claim(self, limit: int) -> Iterator[PgClaim[T]]:
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

    def _take(self, token: uuid.UUID, limit: int) -> list[OutboxItem[T]]:
        params = {
            "limit": limit, "token": token, "worker": self.worker, "lease": self.lease_s,
            "destination": self.destination,
        }  # fmt: skip
        items: list[OutboxItem[T]] = []
        with self._pool.connection() as conn, conn.transaction():
            rows = conn.execute(_CLAIM, params).fetchall()
            unlinked: dict[str, list[int]] = {}
            for row in rows:
                row_id = row[0]
                try:
                    claimed = _claimed_row(row)
                    item = self._reader(conn, claimed)
                except Unlinked as waiting:
                    unlinked.setdefault(waiting.reason[:MAX_REASON], []).append(row_id)
                    continue
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    logger.error("outbox row %d is unreadable (%s): parked", row_id, exc)
                    conn.execute(_PARK_NOW, (f"stored row is unreadable: {exc}"[:MAX_REASON], row_id))
                    continue
                items.append(OutboxItem(row_id, item, claimed.attempts))
            for reason, ids in unlinked.items():
                conn.execute(_TO_WAITING, (reason, ids))
        items.sort(key=lambda i: i.id)
        return items

    def _finish(self, claim: PgClaim[T]) -> None:
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


def _claimed_row(row: tuple[Any, ...]) -> ClaimedRow:
    (row_id, destination, kind, export_key, item_ref, clinic_id, patient_id, device_id, measured_at,
     stored, attempts, mrn, display_name, fhir_id, *device) = row  # fmt: skip
    readings = () if stored is None else readings_of(device_id, measured_at, stored)
    return ClaimedRow(
        row_id, destination, kind, export_key, item_ref, clinic_id, patient_id, device_id,
        measured_at, readings, attempts, PatientInfo(mrn, display_name, fhir_id),
        DeviceInfo(device_id, *device),
    )  # fmt: skip

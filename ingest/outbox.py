"""The FHIR export outbox on PostgreSQL: rows written with the readings, claimed by workers.

:class:`OutboxWriter` is the pipeline hook: inside the ingest transaction it writes one row per
new reading, or one per blood-pressure panel (systolic, diastolic and mean pressure of one device
at one time). A component that arrives in a later batch joins its panel's row while that row has
not gone out; once the panel is in the EHR (or on its way), conditional create cannot add to it,
so the late component gets a ``failed`` row of its own that says so. A panel still missing
systolic or diastolic waits ``panel_wait_s`` for the rest before it goes out incomplete.

:class:`PgOutbox` implements :class:`fhir_export.outbox.Outbox`. A claim picks due rows with
``FOR UPDATE SKIP LOCKED`` and gives them a lease (``claim_token`` + ``claimed_until``) in a short
transaction; the rows are then sent with no transaction open. :meth:`PgOutbox.renew` extends the
leases of open claims, so a live worker keeps its rows however slow the EHR is, and a crashed
worker's rows come back when the lease runs out. What the worker decided is written when the claim
ends, only for rows still held by that claim.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from devices.models import Reading
from fhir_export.models import DeviceInfo, ExportItem
from fhir_export.outbox import Delivered, OutboxItem
from fhir_export.table import MappingTable
from ingest.pipeline import StoredReading
from ingest.store.readings import NEW_READINGS

logger = logging.getLogger(__name__)

PANEL_KEY: Final = "bp_panel"
LATE_PREFIX: Final = "late:"
SYSTOLIC: Final = "systolic_bp"
DIASTOLIC: Final = "diastolic_bp"
PANEL_ORDER: Final = {SYSTOLIC: 0, DIASTOLIC: 1, "mean_arterial_pressure": 2}
WAITING_REASON: Final = (
    "the patient has no FHIR Patient id; link it with PATCH /v1/patients/{id} (fhir_patient_id)"
)
LATE_REASON: Final = (
    "arrived after its blood-pressure panel had been sent to the EHR, which conditional create"
    " cannot amend; the panel in the EHR lacks this component"
)
MAX_REASON: Final = 2000

# --------------------------------------------------------------------------- row contents


def reading_json(reading: Reading) -> dict[str, Any]:
    """What a row keeps of one reading (device and time are columns of the row)."""
    data: dict[str, Any] = {
        "value": reading.value,
        "unit": reading.unit,
        "original_value": reading.original_value,
        "original_unit": reading.original_unit,
    }
    if reading.status:
        data["status"] = list(reading.status)
    if reading.source is not None:
        data["source"] = reading.source
    if reading.gateway_id is not None:
        data["gateway_id"] = reading.gateway_id
    if reading.device_time is not None:
        data["device_time"] = reading.device_time.isoformat()
    return data


def row_readings(alias: str = "fhir_outbox") -> str:
    """SQL for a row's readings as one document (metric -> what reading_json() makes), whichever
    way the row keeps them: the JSON column (panels, late components) or the typed columns
    (single readings)."""
    t = alias
    return f"""coalesce({t}.readings, jsonb_build_object({t}.export_key, jsonb_strip_nulls(
    jsonb_build_object(
        'value', {t}.value, 'unit', {t}.unit, 'original_value', {t}.original_value,
        'original_unit', {t}.original_unit,
        'status', CASE WHEN cardinality({t}.reading_status) > 0 THEN to_jsonb({t}.reading_status) END,
        'source', {t}.source, 'gateway_id', {t}.gateway_id, 'device_time', {t}.device_time))))"""


def reading_from_json(device_id: str, measured_at: datetime, metric: str, data: Any) -> Reading:
    """The reading back from a row; KeyError, TypeError or ValueError when it is unreadable."""
    device_time = data.get("device_time")
    return Reading(
        device_id=device_id,
        metric=metric,
        value=float(data["value"]),
        unit=str(data["unit"]),
        measured_at=measured_at,
        original_value=float(data["original_value"]),
        original_unit=str(data["original_unit"]),
        status=tuple(str(s) for s in data.get("status", ())),
        source=data.get("source"),
        gateway_id=data.get("gateway_id"),
        device_time=None if device_time is None else datetime.fromisoformat(device_time),
    )


def _readings_of(device_id: str, measured_at: datetime, stored: Mapping[str, Any]) -> tuple[Reading, ...]:
    ordered = sorted(stored.items(), key=lambda pair: (PANEL_ORDER.get(pair[0], 9), pair[0]))
    return tuple(reading_from_json(device_id, measured_at, metric, data) for metric, data in ordered)


# --------------------------------------------------------------------------- the ingest hook

_LOCK_PATIENTS: Final = (
    # FOR SHARE: linking a patient (UPDATE patients) waits for this transaction and vice versa,
    # so rows are never written 'waiting' just after the patient's release ran.
    "SELECT id, clinic_id, fhir_patient_id FROM patients WHERE id = ANY(%s) ORDER BY id FOR SHARE"
)
_ROWS: Final = """
FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(
    clinic_id text, patient_id uuid, device_id text, export_key text, kind text,
    measured_at timestamptz, readings jsonb, status text, last_error text, delay_s float8)
"""
_INSERT: Final = """
INSERT INTO fhir_outbox (clinic_id, patient_id, device_id, export_key, kind, measured_at, readings,
                         status, last_error, next_attempt_at)
SELECT r.clinic_id, r.patient_id, r.device_id, r.export_key, r.kind, r.measured_at, r.readings,
       r.status, r.last_error, now() + make_interval(secs => r.delay_s)
"""
# Single readings go in straight from the batch's new rows, into typed columns (no conflict is
# possible for them: see the migrations).
_INSERT_SINGLES: Final = f"""
WITH locked AS MATERIALIZED (  -- as _LOCK_PATIENTS
    SELECT id, clinic_id, fhir_patient_id FROM patients
    WHERE id IN (SELECT patient_id FROM {NEW_READINGS}) ORDER BY id FOR SHARE
)
INSERT INTO fhir_outbox (clinic_id, patient_id, device_id, export_key, kind, measured_at, status,
                         last_error, value, unit, original_value, original_unit, reading_status,
                         source, gateway_id, device_time)
SELECT p.clinic_id, n.patient_id, n.device_id, n.metric, 'reading', n.measured_at,
       CASE WHEN p.fhir_patient_id IS NULL THEN 'waiting' ELSE 'pending' END,
       CASE WHEN p.fhir_patient_id IS NULL THEN %(reason)s END,
       n.value, n.unit, n.original_value, n.original_unit, n.status, n.source, n.gateway_id,
       n.device_time
FROM {NEW_READINGS} n JOIN locked p ON p.id = n.patient_id
WHERE n.metric = ANY(%(metrics)s)
"""

_PANEL_CONFLICT: Final = "ON CONFLICT (device_id, export_key, measured_at) WHERE kind <> 'reading'"
_INSERT_LATE: Final = _INSERT + _ROWS + _PANEL_CONFLICT + " DO NOTHING"
_UPSERT_PANELS: Final = (
    _INSERT
    + _ROWS
    + _PANEL_CONFLICT
    + """ DO UPDATE
SET readings = fhir_outbox.readings || EXCLUDED.readings,
    next_attempt_at = CASE
        WHEN (fhir_outbox.readings || EXCLUDED.readings) ?& array['systolic_bp', 'diastolic_bp']
        THEN least(fhir_outbox.next_attempt_at, now())
        ELSE fhir_outbox.next_attempt_at END,
    updated_at = now()
WHERE fhir_outbox.status <> 'sent'
  AND (fhir_outbox.claimed_until IS NULL OR fhir_outbox.claimed_until < now())
RETURNING device_id, measured_at
"""
)
_EXISTING_PANELS: Final = """
SELECT o.device_id, o.measured_at, o.readings
FROM fhir_outbox o JOIN jsonb_to_recordset(%s::jsonb) AS k(device_id text, measured_at timestamptz)
  ON o.device_id = k.device_id AND o.measured_at = k.measured_at
WHERE o.export_key = 'bp_panel' AND o.kind <> 'reading'
"""


@dataclass(slots=True)
class _Row:
    clinic_id: str
    patient_id: str
    device_id: str
    export_key: str
    kind: str
    measured_at: datetime
    readings: dict[str, Any]
    status: str
    last_error: str | None
    delay_s: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "clinic_id": self.clinic_id,
            "patient_id": self.patient_id,
            "device_id": self.device_id,
            "export_key": self.export_key,
            "kind": self.kind,
            "measured_at": self.measured_at.isoformat(),
            "readings": self.readings,
            "status": self.status,
            "last_error": self.last_error,
            "delay_s": self.delay_s,
        }


class OutboxWriter:
    """The ``NewReadingsHook`` that writes outbox rows in the ingest transaction."""

    def __init__(self, table: MappingTable, *, panel_wait_s: float = 30.0) -> None:
        self._panel_wait_s = panel_wait_s
        codings = table.metrics.values()
        self._single_metrics = sorted(c.metric for c in codings if not c.bp_component)
        self._single_set = frozenset(self._single_metrics)
        self._panel_metrics = frozenset(c.metric for c in codings if c.bp_component)

    def __call__(self, conn: psycopg.Connection[Any], readings: Sequence[StoredReading]) -> None:
        panel_parts = [s for s in readings if s.reading.metric in self._panel_metrics]
        with conn.cursor() as cur:
            if any(s.reading.metric in self._single_set for s in readings):
                # Single readings: copied from the batch's new rows in SQL (they never travel back
                # here), after locking their patients.
                cur.execute(_INSERT_SINGLES, {"metrics": self._single_metrics, "reason": WAITING_REASON})
            if panel_parts:
                self._panels(cur, panel_parts)

    def _panels(self, cur: psycopg.Cursor[Any], parts: Sequence[StoredReading]) -> None:
        """Panel components join their panel's row (or make it); late ones get a failed row."""
        linked: dict[str, tuple[str, str | None]] = {
            str(pid): (clinic, fhir_id)
            for pid, clinic, fhir_id in cur.execute(
                _LOCK_PATIENTS, (list({s.patient_id for s in parts}),)
            ).fetchall()
        }
        panels: dict[tuple[str, datetime], _Row] = {}
        for stored in parts:
            reading, patient = stored.reading, str(stored.patient_id)
            clinic, fhir_id = linked[patient]
            status, reason = ("pending", None) if fhir_id else ("waiting", WAITING_REASON)
            key = (reading.device_id, reading.measured_at)
            panel = panels.get(key)
            if panel is None:
                panel = panels[key] = _Row(
                    clinic, patient, reading.device_id, PANEL_KEY, "bp_panel", reading.measured_at,
                    {}, status, reason,
                )  # fmt: skip
            panel.readings[reading.metric] = reading_json(reading)
        for panel in panels.values():
            complete = SYSTOLIC in panel.readings and DIASTOLIC in panel.readings
            panel.delay_s = 0.0 if complete else self._panel_wait_s
        cur.execute(_UPSERT_PANELS, {"rows": Jsonb([p.as_json() for p in panels.values()])})
        written = {(d, m) for d, m in cur.fetchall()}
        late = [p for key, p in panels.items() if key not in written]
        if late:
            self._late_components(cur, late)

    @staticmethod
    def _late_components(cur: psycopg.Cursor[Any], panels: list[_Row]) -> None:
        """Components whose panel went out already: a failed row each, saying why."""
        keys = [{"device_id": p.device_id, "measured_at": p.measured_at.isoformat()} for p in panels]
        cur.execute(_EXISTING_PANELS, (Jsonb(keys),))
        existing = {(d, m): set(r) for d, m, r in cur.fetchall()}
        rows: list[_Row] = []
        for panel in panels:
            have = existing.get((panel.device_id, panel.measured_at), set())
            for metric, data in panel.readings.items():
                if metric in have:
                    continue  # stored again after the readings table let it go: already exported
                rows.append(
                    _Row(panel.clinic_id, panel.patient_id, panel.device_id, LATE_PREFIX + metric,
                         "late_component", panel.measured_at, {metric: data}, "failed", LATE_REASON)
                )  # fmt: skip
        if rows:
            logger.warning("%d blood-pressure components arrived after their panel was sent", len(rows))
            cur.execute(_INSERT_LATE, {"rows": Jsonb([r.as_json() for r in rows])})


# --------------------------------------------------------------------------- claims

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
                    readings = _readings_of(device_id, measured_at, stored)
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

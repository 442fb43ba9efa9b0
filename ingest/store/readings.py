"""SQL for readings: idempotent batch insert (COPY -> the batch's table -> INSERT) and queries.

After :func:`insert_readings`, and until the next call or the end of the transaction, the session
temp table ``reading_new`` (:data:`NEW_READINGS`) holds exactly the rows that call stored, with
their patients (``status`` NULL when empty): hooks that only need to copy readings elsewhere do it
in SQL from there, without sending the rows back and forth.

How a batch goes in (bench/ingest_mqtt.py gateway mode measures it beside raw COPY):
1. one query reads the assignments of the batch's devices, and each reading is attributed to its
   patient here (the newest assignment at or before ``measured_at``);
2. the attributed readings are copied into ``reading_new`` (binary COPY);
3. a plain ``INSERT ... SELECT`` stores them, in a savepoint. Usually every key is new, and that is
   all: no ``ON CONFLICT``, no ``RETURNING`` (collecting the returned rows cost as much as the
   insert itself). A key stored already (a redelivery, a retried request, another process storing
   the same reading at the same moment) fails it with a unique violation; then the batch goes in
   again with ``ON CONFLICT DO NOTHING``, and the rows that were not new leave ``reading_new``.
"""

from __future__ import annotations

import re
import weakref
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Final
from uuid import UUID

import psycopg

from devices.models import Reading
from ingest.db import timescale
from ingest.db.rows import fetch_all

# What a reading row carries, as stored new (with its batch index and its patient).
_FIELDS: Final = (
    "device_id, metric, measured_at, value, unit, original_value, original_unit, status, source,"
    " gateway_id, device_time, patient_id"
)
NEW_READINGS: Final = "reading_new"
_CREATE_STAGE: Final = f"""
CREATE TEMP TABLE IF NOT EXISTS {NEW_READINGS} (
    idx integer NOT NULL,
    device_id text NOT NULL, metric text NOT NULL, measured_at timestamptz NOT NULL,
    value double precision NOT NULL, unit text NOT NULL, original_value double precision NOT NULL,
    original_unit text NOT NULL, status text[], source text, gateway_id text,
    device_time timestamptz, patient_id uuid NOT NULL
) ON COMMIT DELETE ROWS
"""
_COPY_NEW: Final = f"COPY {NEW_READINGS} (idx, {_FIELDS}) FROM STDIN (FORMAT BINARY)"
_NEW_TYPES: Final = (
    "int4", "text", "text", "timestamptz", "float8", "text", "float8", "text", "text[]", "text",
    "text", "timestamptz", "uuid",
)
# The assignments of the batch's devices (a device without any: one row of NULLs; an unknown
# device: no row), oldest first; and, in the same round trip, what an earlier call of the same
# transaction left in reading_new.
_ASSIGNMENTS: Final = f"""
WITH forgotten AS (DELETE FROM {NEW_READINGS})
SELECT d.id, a.since, a.patient_id
FROM devices d LEFT JOIN device_assignments a ON a.device_id = d.id
WHERE d.id = ANY(%s)
ORDER BY d.id, a.since
"""
# Every key new (nearly always): the whole batch, no ON CONFLICT, no RETURNING. status is NULL in
# reading_new when empty (nearly always): no array to encode per row.
_INSERT_ALL_NEW: Final = f"""
INSERT INTO readings ({_FIELDS}, received_at)
SELECT {_FIELDS.replace("status", "coalesce(status, '{}')")}, %(received_at)s FROM {NEW_READINGS}"""
# Some keys are stored already: ON CONFLICT skips them, and they leave reading_new (their batch
# indexes come back: duplicates).
_INSERT_KNOWN_SOME: Final = f"""
WITH inserted AS ({_INSERT_ALL_NEW}
    ON CONFLICT DO NOTHING
    RETURNING device_id, metric, measured_at
)
DELETE FROM {NEW_READINGS} n
WHERE NOT EXISTS (
    SELECT 1 FROM inserted i
    WHERE i.device_id = n.device_id AND i.metric = n.metric AND i.measured_at = n.measured_at
)
RETURNING n.idx
"""


# Connections whose session has the batch table committed (a temp table lives as long as its
# session; a reconnect is a new connection object). Others create it in the caller's transaction.
_staged_connections: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()


def prepare_session(conn: psycopg.Connection[Any]) -> None:
    """Create the session's batch table and commit (called when the pool opens a connection)."""
    conn.execute(_CREATE_STAGE)
    conn.commit()
    _staged_connections.add(conn)


class InsertStatus(Enum):
    INSERTED = "inserted"
    DUPLICATE = "duplicate"
    UNKNOWN_DEVICE = "unknown_device"
    UNASSIGNED = "unassigned"


@dataclass(frozen=True, slots=True)
class InsertResult:
    status: InsertStatus
    patient_id: UUID | None


_DUPLICATE: Final = InsertResult(InsertStatus.DUPLICATE, None)
_UNASSIGNED: Final = InsertResult(InsertStatus.UNASSIGNED, None)
_UNKNOWN_DEVICE: Final = InsertResult(InsertStatus.UNKNOWN_DEVICE, None)


@dataclass(slots=True)
class _Assignments:
    """One device's assignments, oldest first: from ``since[i]`` on, its readings are
    ``results[i]``'s (an inserted reading of that patient, or unassigned)."""

    since: list[datetime]
    results: list[InsertResult]

    def at(self, measured_at: datetime) -> InsertResult:
        i = bisect_right(self.since, measured_at) - 1
        return self.results[i] if i >= 0 else _UNASSIGNED


def _assignments(cur: psycopg.Cursor[Any], devices: list[str]) -> dict[str, _Assignments]:
    found: dict[str, _Assignments] = {}
    for device, since, patient in cur.execute(_ASSIGNMENTS, (devices,)):
        entry = found.setdefault(device, _Assignments([], []))
        if since is not None:
            entry.since.append(since)
            entry.results.append(
                _UNASSIGNED if patient is None else InsertResult(InsertStatus.INSERTED, patient)
            )
    return found


def insert_readings(
    conn: psycopg.Connection[Any], readings: Sequence[Reading], *, received_at: datetime
) -> list[InsertResult]:
    """Insert ``readings`` (keys must be unique within the batch); one result per reading, in order.

    Must run inside the caller's transaction: ``reading_new`` is emptied at commit.
    """
    with conn.cursor() as cur:
        if conn not in _staged_connections:
            cur.execute(_CREATE_STAGE)
        if not readings:
            cur.execute(f"DELETE FROM {NEW_READINGS}")  # hooks see nothing new
            return []
        assignments = _assignments(cur, sorted({r.device_id for r in readings}))
        results: list[InsertResult] = []
        new = 0
        with cur.copy(_COPY_NEW) as copy:
            copy.set_types(_NEW_TYPES)
            for idx, r in enumerate(readings):
                device = assignments.get(r.device_id)
                result = _UNKNOWN_DEVICE if device is None else device.at(r.measured_at)
                results.append(result)
                if result.patient_id is None:
                    continue
                new += 1
                copy.write_row(
                    (
                        idx,
                        r.device_id,
                        r.metric,
                        r.measured_at,
                        r.value,
                        r.unit,
                        r.original_value,
                        r.original_unit,
                        list(r.status) if r.status else None,
                        r.source,
                        r.gateway_id,
                        r.device_time,
                        result.patient_id,
                    )
                )
        if not new:
            return results
        params = {"received_at": received_at}
        try:
            with conn.transaction():  # a savepoint: reading_new outlives a failed attempt
                cur.execute(_INSERT_ALL_NEW, params)
        except psycopg.errors.UniqueViolation:
            for (idx,) in cur.execute(_INSERT_KNOWN_SOME, params, binary=True).fetchall():
                results[idx] = _DUPLICATE
    return results


def update_battery_levels(conn: psycopg.Connection[Any], readings: Sequence[Reading]) -> None:
    """Record each device's battery level from the newest reading of the batch that carries one."""
    levels: dict[str, tuple[datetime, int]] = {}
    for r in readings:
        if r.battery_level is not None:
            seen = levels.get(r.device_id)
            if seen is None or seen[0] <= r.measured_at:
                levels[r.device_id] = (r.measured_at, r.battery_level)
    if not levels:
        return
    with conn.cursor() as cur:
        # sorted, so concurrent batches lock device rows in the same order
        cur.executemany(
            "UPDATE devices SET battery_level = %s WHERE id = %s AND battery_level IS DISTINCT FROM %s",
            [(level, device, level) for device, (_, level) in sorted(levels.items())],
        )


_BUCKET_RE: Final = re.compile(r"^(\d{1,4})(m|h|d)$")
_BUCKET_UNITS: Final = {"m": "minutes", "h": "hours", "d": "days"}


def parse_bucket(text: str) -> timedelta:
    """``15m``, ``1h``, ``7d`` -> timedelta; ValueError for anything else or out of 1m..31d."""
    match = _BUCKET_RE.match(text)
    if match is None:
        raise ValueError("bucket must look like 15m, 1h or 1d")
    width = timedelta(**{_BUCKET_UNITS[match.group(2)]: int(match.group(1))})
    if not timedelta(minutes=1) <= width <= timedelta(days=31):
        raise ValueError("bucket must be between 1m and 31d")
    return width


def _window(
    conn: psycopg.Connection[Any],
    select: str,
    tail: str,
    *,
    patient_id: UUID,
    metrics: Sequence[str],
    since: datetime,
    until: datetime,
    **params: Any,
) -> list[dict[str, Any]]:
    """Run ``select`` over the patient's readings of ``metrics`` measured in [since, until)."""
    return fetch_all(
        conn,
        f"{select} FROM readings WHERE patient_id = %(p)s AND metric = ANY(%(m)s)"
        f" AND measured_at >= %(since)s AND measured_at < %(until)s {tail}",
        {"p": patient_id, "m": list(metrics), "since": since, "until": until, **params},
    )


def query_readings(
    conn: psycopg.Connection[Any],
    *,
    patient_id: UUID,
    metrics: Sequence[str],
    since: datetime,
    until: datetime,
    limit: int,
) -> list[dict[str, Any]]:
    return _window(
        conn,
        "SELECT metric, value, unit, measured_at, device_id, status, original_value, original_unit",
        "ORDER BY measured_at, metric LIMIT %(limit)s",
        patient_id=patient_id,
        metrics=metrics,
        since=since,
        until=until,
        limit=limit,
    )


def query_buckets(
    conn: psycopg.Connection[Any],
    *,
    patient_id: UUID,
    metrics: Sequence[str],
    since: datetime,
    until: datetime,
    width: timedelta,
) -> list[dict[str, Any]]:
    """Aggregates per time bucket: from TimescaleDB's hourly or daily aggregate when one serves
    ``width`` (:func:`ingest.db.timescale.aggregate_buckets`), else from the raw readings with
    ``date_bin`` (PostgreSQL 14+, with or without Timescale)."""
    from_aggregate = timescale.aggregate_buckets(
        conn, patient_id=patient_id, metrics=list(metrics), since=since, until=until, width=width
    )
    if from_aggregate is not None:
        return from_aggregate
    return raw_buckets(
        conn, patient_id=patient_id, metrics=metrics, since=since, until=until, width=width
    )


def raw_buckets(
    conn: psycopg.Connection[Any],
    *,
    patient_id: UUID,
    metrics: Sequence[str],
    since: datetime,
    until: datetime,
    width: timedelta,
) -> list[dict[str, Any]]:
    """:func:`query_buckets` computed from the raw readings."""
    return _window(
        conn,
        "SELECT metric, date_bin(%(w)s, measured_at, TIMESTAMPTZ '2000-01-01') AS bucket_start,"
        " min(value) AS min, max(value) AS max, avg(value) AS avg, count(*) AS count",
        "GROUP BY 1, 2 ORDER BY 1, 2",
        patient_id=patient_id,
        metrics=metrics,
        since=since,
        until=until,
        w=width,
    )

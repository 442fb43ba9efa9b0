"""SQL for readings: idempotent batch insert (COPY -> staging -> INSERT ... ON CONFLICT) and queries.

After :func:`insert_readings`, and until the next call or the end of the transaction, the session
temp table ``reading_new`` (:data:`NEW_READINGS`) holds exactly the rows that call stored, with
their patients: hooks that only need to copy readings elsewhere do it in SQL from there, without
sending the rows back and forth.
"""

from __future__ import annotations

import re
import weakref
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

# What a reading row carries, as staged (with the batch index) and as stored new (with its patient).
_FIELDS: Final = (
    "device_id, metric, measured_at, value, unit, original_value, original_unit, status, source,"
    " gateway_id, device_time"
)
_FIELD_TYPES: Final = """
    device_id text NOT NULL, metric text NOT NULL, measured_at timestamptz NOT NULL,
    value double precision NOT NULL, unit text NOT NULL, original_value double precision NOT NULL,
    original_unit text NOT NULL, status text[] NOT NULL, source text, gateway_id text,
    device_time timestamptz"""
_STAGE_COLUMNS: Final = f"idx, {_FIELDS}"
_NEW_COLUMNS: Final = f"{_FIELDS}, patient_id"
NEW_READINGS: Final = "reading_new"
_CREATE_STAGE: Final = f"""
CREATE TEMP TABLE IF NOT EXISTS reading_stage (idx integer NOT NULL, {_FIELD_TYPES}
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS {NEW_READINGS} ({_FIELD_TYPES}, patient_id uuid NOT NULL
) ON COMMIT DELETE ROWS
"""
_COPY_STAGE: Final = f"COPY reading_stage ({_STAGE_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_STAGE_TYPES: Final = (
    "int4", "text", "text", "timestamptz", "float8", "text", "float8", "text", "text[]", "text",
    "text", "timestamptz",
)
_INSERT_FROM_STAGE: Final = f"""
WITH ranges AS MATERIALIZED (
    -- each assignment of the batch's devices as a [since, until) range
    SELECT a.device_id, a.patient_id, a.since,
           lead(a.since) OVER (PARTITION BY a.device_id ORDER BY a.since) AS until
    FROM device_assignments a
    WHERE a.device_id IN (SELECT DISTINCT device_id FROM reading_stage)
), staged AS MATERIALIZED (
    SELECT s.*, d.id IS NOT NULL AS known, r.patient_id
    FROM reading_stage s
    LEFT JOIN devices d ON d.id = s.device_id
    LEFT JOIN ranges r ON r.device_id = s.device_id AND s.measured_at >= r.since
                      AND (r.until IS NULL OR s.measured_at < r.until)
), inserted AS (
    INSERT INTO readings (device_id, metric, measured_at, patient_id, value, unit, original_value,
                          original_unit, status, source, gateway_id, device_time, received_at)
    SELECT device_id, metric, measured_at, patient_id, value, unit, original_value,
           original_unit, status, source, gateway_id, device_time, %(received_at)s
    FROM staged WHERE patient_id IS NOT NULL
    ON CONFLICT DO NOTHING
    RETURNING {_NEW_COLUMNS}
), noted AS (
    INSERT INTO {NEW_READINGS} ({_NEW_COLUMNS}) SELECT {_NEW_COLUMNS} FROM inserted
), forgotten AS (
    -- what an earlier call of the same transaction left (every sub-statement sees the snapshot
    -- taken before this one, so these deletes miss the rows it adds)
    DELETE FROM {NEW_READINGS}
), unstaged AS (
    DELETE FROM reading_stage
)
-- batch indexes grouped by patient (few rows to read back): the new rows, with their patient,
-- and the rows that could not be attributed (no patient; known tells whether the device is
-- registered). Every other row of the batch was already stored (a duplicate). IN over the
-- inserted keys is one hash of them (a join here was planned as two sorts and a merge).
SELECT s.patient_id, s.known, array_agg(s.idx)
FROM staged s
WHERE s.patient_id IS NULL
   OR (s.device_id, s.metric, s.measured_at) IN (SELECT device_id, metric, measured_at FROM inserted)
GROUP BY s.patient_id, s.known
"""


# Connections whose session has the staging table committed (a temp table lives as long as its
# session; a reconnect is a new connection object). Others create it in the caller's transaction.
_staged_connections: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()


def prepare_session(conn: psycopg.Connection[Any]) -> None:
    """Create the session's staging table and commit (called when the pool opens a connection)."""
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


def insert_readings(
    conn: psycopg.Connection[Any], readings: Sequence[Reading], *, received_at: datetime
) -> list[InsertResult]:
    """Insert ``readings`` (keys must be unique within the batch); one result per reading, in order.

    Must run inside the caller's transaction: the staging rows vanish at commit.
    """
    with conn.cursor() as cur:
        if conn not in _staged_connections:
            cur.execute(_CREATE_STAGE)
        if not readings:
            cur.execute(f"DELETE FROM {NEW_READINGS}")  # hooks see nothing new
            return []
        with cur.copy(_COPY_STAGE) as copy:
            copy.set_types(_STAGE_TYPES)
            for idx, r in enumerate(readings):
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
                        list(r.status),
                        r.source,
                        r.gateway_id,
                        r.device_time,
                    )
                )
        # binary results: the index arrays load without parsing text
        cur.execute(_INSERT_FROM_STAGE, {"received_at": received_at}, binary=True)
        rows = cur.fetchall()
    results = [_DUPLICATE] * len(readings)
    for patient_id, known, indexes in rows:
        if patient_id is not None:
            result = InsertResult(InsertStatus.INSERTED, patient_id)
        else:
            result = _UNASSIGNED if known else _UNKNOWN_DEVICE
        for idx in indexes:
            results[idx] = result
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

"""Every TimescaleDB-only statement lives here, switched on by detecting the extension.

Without TimescaleDB the same schema and queries run on plain PostgreSQL (``date_bin`` stands in for
``time_bucket``, and bucket queries read the raw readings); with it:

- ``readings`` is a hypertable (7-day chunks), compressed after 7 days (segments per device and
  metric, newest first) by a compression policy; late readings still go into compressed chunks;
- two continuous aggregates, ``readings_hourly`` and ``readings_daily`` (min, max, avg, count per
  patient, metric and bucket), with real-time aggregation (buckets past the last refresh are
  computed from the raw rows at query time), refreshed every 30 minutes (daily: every hour) over
  the last ``REFRESH_DAYS`` days, and compressed themselves after ``AGGREGATE_COMPRESS_AFTER``;
- an optional retention policy on the raw readings (``RPM_READINGS_RETENTION_DAYS``): the
  aggregates keep the hourly and daily history after the raw chunks are dropped, and their
  refresh window is kept inside the retention (a refresh over dropped raw data would empty them);
- :func:`aggregate_buckets`: the dashboard's bucket queries whose width is a whole number of hours
  (or days) read the aggregate, plus the raw readings of the partial buckets at either end.

A reading that arrives late for an hour already materialised shows in the aggregate at the next
refresh (within 30 minutes); readings newer than the last refresh are always included.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

import psycopg
from psycopg import sql

from ingest.db.rows import fetch_all

logger = logging.getLogger(__name__)

HOURLY_VIEW: Final = "readings_hourly"
DAILY_VIEW: Final = "readings_daily"
COMPRESS_AFTER: Final = "7 days"
# How far back a refresh looks for changed raw data (readings of a gateway that was offline that
# long still reach the aggregates); never beyond the raw retention (see set_retention).
REFRESH_DAYS: Final = 35
AGGREGATE_COMPRESS_AFTER: Final = "60 days"  # must stay beyond the refresh window
ORIGIN: Final = datetime(2000, 1, 1, tzinfo=UTC)  # date_bin's origin in every bucket query


class _Aggregate:
    """One continuous aggregate: its view, bucket width, refresh schedule and end offset."""

    def __init__(self, view: str, width: timedelta, schedule: str, end_offset: str) -> None:
        self.view = view
        self.width = width
        self.interval = f"{int(width.total_seconds()) // 3600} hours"
        self.schedule = schedule
        self.end_offset = end_offset

    def create(self) -> sql.Composed:
        return sql.SQL(
            """CREATE MATERIALIZED VIEW IF NOT EXISTS {view}
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket(INTERVAL {width}, measured_at) AS bucket_start,
               patient_id, metric,
               min(value) AS min, max(value) AS max, avg(value) AS avg, count(*) AS count
        FROM readings
        GROUP BY time_bucket(INTERVAL {width}, measured_at), patient_id, metric
        WITH NO DATA"""
        ).format(view=sql.Identifier(self.view), width=sql.Literal(self.interval))


# The dashboard's widest buckets first: a width that is a whole number of days reads the daily one.
AGGREGATES: Final = (
    _Aggregate(DAILY_VIEW, timedelta(days=1), "1 hour", "1 day"),
    _Aggregate(HOURLY_VIEW, timedelta(hours=1), "30 minutes", "1 hour"),
)

_SETUP: Final = (
    "CREATE EXTENSION IF NOT EXISTS timescaledb",
    "SELECT create_hypertable('readings', 'measured_at', chunk_time_interval => INTERVAL '7 days',"
    " if_not_exists => TRUE, migrate_data => TRUE)",
)
_COMPRESS: Final = (
    "ALTER TABLE readings SET (timescaledb.compress,"
    " timescaledb.compress_segmentby = 'device_id, metric',"
    " timescaledb.compress_orderby = 'measured_at DESC')"
)


def is_available(conn: psycopg.Connection[Any]) -> bool:
    """True when the server can load the timescaledb extension."""
    row = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    return row is not None


def is_enabled(conn: psycopg.Connection[Any]) -> bool:
    """True when ``readings`` is already a hypertable."""
    row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    if row is None:
        return False
    row = conn.execute(
        "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = 'readings'"
    ).fetchone()
    return row is not None


def setup(conn: psycopg.Connection[Any]) -> None:
    """Hypertable, compression and its policy, the aggregates, their refresh and compression
    policies; each step only if missing, so a database set up by an older version gains what is
    new (the daily aggregate, aggregate compression, the refresh window).

    Continuous aggregates cannot be created inside a transaction block: ``conn`` must be in
    autocommit mode.
    """
    for statement in _SETUP:
        conn.execute(statement)
    if not _compressed(conn, "readings"):
        conn.execute(_COMPRESS)
    conn.execute(
        f"SELECT add_compression_policy('readings', INTERVAL '{COMPRESS_AFTER}', if_not_exists => TRUE)"
    )
    for aggregate in AGGREGATES:
        conn.execute(aggregate.create())
        if not _compressed(conn, aggregate.view):
            conn.execute(
                sql.SQL("ALTER MATERIALIZED VIEW {} SET (timescaledb.compress = true)").format(
                    sql.Identifier(aggregate.view)
                )
            )
    set_refresh_window(conn, REFRESH_DAYS)
    for aggregate in AGGREGATES:
        conn.execute(
            "SELECT add_compression_policy(%s::regclass, compress_after => %s::interval,"
            " if_not_exists => TRUE)",
            (aggregate.view, AGGREGATE_COMPRESS_AFTER),
        )
    logger.info(
        "TimescaleDB: readings is a compressed hypertable with the aggregates %s",
        ", ".join(a.view for a in AGGREGATES),
    )


def _compressed(conn: psycopg.Connection[Any], name: str) -> bool:
    """Whether compression is enabled on the hypertable or continuous aggregate ``name``."""
    if name == "readings":
        query = (
            "SELECT compression_enabled FROM timescaledb_information.hypertables"
            " WHERE hypertable_name = %s"
        )
    else:
        query = (
            "SELECT compression_enabled FROM timescaledb_information.continuous_aggregates"
            " WHERE view_name = %s"
        )
    row = conn.execute(query, (name,)).fetchone()
    return bool(row and row[0])


def refresh_days_for(retention_days: int | None) -> int:
    """The aggregates' refresh window: ``REFRESH_DAYS``, or a day short of the raw retention
    (never under 3 days: two daily buckets past the end offset)."""
    if retention_days is None:
        return REFRESH_DAYS
    return max(3, min(REFRESH_DAYS, retention_days - 1))


def set_refresh_window(conn: psycopg.Connection[Any], days: int) -> None:
    """(Re)place each aggregate's refresh policy: every ``schedule``, over the last ``days``
    (``if_not_exists``: several processes starting together each try; one policy results)."""
    for aggregate in AGGREGATES:
        conn.execute(
            "SELECT remove_continuous_aggregate_policy(%s::regclass, if_exists => TRUE)",
            (aggregate.view,),
        )
        conn.execute(
            "SELECT add_continuous_aggregate_policy(%s::regclass, start_offset => %s::interval,"
            " end_offset => %s::interval, schedule_interval => %s::interval, if_not_exists => TRUE)",
            (aggregate.view, f"{int(days)} days", aggregate.end_offset, aggregate.schedule),
        )


def set_retention(conn: psycopg.Connection[Any], days: int | None) -> None:
    """Apply (or remove) the raw-readings retention policy; keep the aggregates' refresh window
    inside it. The aggregates themselves are kept."""
    conn.execute("SELECT remove_retention_policy('readings', if_exists => TRUE)")
    if days:
        conn.execute(
            sql.SQL("SELECT add_retention_policy('readings', {}::interval, if_not_exists => TRUE)").format(
                sql.Literal(f"{int(days)} days")
            )
        )
    set_refresh_window(conn, refresh_days_for(days))


def policy_jobs(conn: psycopg.Connection[Any]) -> dict[tuple[str, str], int]:
    """{(policy, table or view): job id} of the policies on readings and its aggregates (for
    ``CALL run_job`` where no background workers run, and for checks)."""
    rows = conn.execute(
        "SELECT j.proc_name, coalesce(c.view_name, j.hypertable_name), j.job_id"
        " FROM timescaledb_information.jobs j"
        " LEFT JOIN timescaledb_information.continuous_aggregates c"
        "   ON c.materialization_hypertable_name = j.hypertable_name"
        " WHERE j.proc_name LIKE 'policy_%'"
    ).fetchall()
    return {(proc, table): job for proc, table, job in rows}


def _aggregate_for(width: timedelta) -> _Aggregate | None:
    for aggregate in AGGREGATES:
        if width >= aggregate.width and width % aggregate.width == timedelta(0):
            return aggregate
    return None


def _existing(conn: psycopg.Connection[Any], view: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (view,)).fetchone()
    return bool(row and row[0])


def _floor(at: datetime, width: timedelta) -> datetime:
    return at - (at - ORIGIN) % width


_FROM_AGGREGATE: Final = """
WITH parts AS (
    SELECT metric, date_bin(%(w)s, bucket_start, %(origin)s) AS b, min, max, avg * count AS total, count
    FROM {view}
    WHERE patient_id = %(p)s AND metric = ANY(%(m)s) AND bucket_start >= %(lo)s AND bucket_start < %(hi)s
    UNION ALL
    -- the partial buckets at either end, from the raw readings
    SELECT metric, date_bin(%(w)s, measured_at, %(origin)s), value, value, value, 1
    FROM readings
    WHERE patient_id = %(p)s AND metric = ANY(%(m)s)
      AND ((measured_at >= %(since)s AND measured_at < %(lo)s)
           OR (measured_at >= %(hi)s AND measured_at < %(until)s))
)
SELECT metric, b AS bucket_start, min(min) AS min, max(max) AS max,
       sum(total) / sum(count)::float8 AS avg, sum(count)::bigint AS count
FROM parts GROUP BY 1, 2 ORDER BY 1, 2
"""


def aggregate_buckets(
    conn: psycopg.Connection[Any],
    *,
    patient_id: UUID,
    metrics: list[str],
    since: datetime,
    until: datetime,
    width: timedelta,
) -> list[dict[str, Any]] | None:
    """Buckets of ``width`` (min, max, avg, count per metric) over [since, until) read from the
    hourly or daily aggregate; None when none serves this width and range (not a whole number of
    hours, no whole aggregate bucket in the range, or no TimescaleDB): then read the raw readings.

    The same rows as the raw query, but for ``avg``, recombined from hourly (or daily) averages
    and counts: equal up to floating-point rounding.
    """
    aggregate = _aggregate_for(width)
    if aggregate is None:
        return None
    step = aggregate.width
    lo = _floor(since, step)
    if lo < since:
        lo += step
    hi = _floor(until, step)
    if lo >= hi or not _existing(conn, aggregate.view):
        return None
    query = sql.SQL(_FROM_AGGREGATE).format(view=sql.Identifier(aggregate.view))
    return fetch_all(
        conn,
        query,
        {"w": width, "origin": ORIGIN, "p": patient_id, "m": metrics, "since": since, "until": until,
         "lo": lo, "hi": hi},
    )

"""Every TimescaleDB-only statement lives here, switched on by detecting the extension.

Without TimescaleDB the same schema and queries run on plain PostgreSQL (``date_bin`` stands in for
``time_bucket``); with it, ``readings`` becomes a compressed hypertable with an hourly continuous
aggregate and an optional retention policy.
"""

from __future__ import annotations

import logging
from typing import Final

import psycopg
from psycopg import sql

logger = logging.getLogger(__name__)

HOURLY_VIEW: Final = "readings_hourly"
COMPRESS_AFTER: Final = "7 days"

_SETUP: Final = (
    "CREATE EXTENSION IF NOT EXISTS timescaledb",
    "SELECT create_hypertable('readings', 'measured_at', chunk_time_interval => INTERVAL '7 days',"
    " if_not_exists => TRUE, migrate_data => TRUE)",
    "ALTER TABLE readings SET (timescaledb.compress,"
    " timescaledb.compress_segmentby = 'device_id, metric',"
    " timescaledb.compress_orderby = 'measured_at DESC')",
    f"SELECT add_compression_policy('readings', INTERVAL '{COMPRESS_AFTER}', if_not_exists => TRUE)",
    f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {HOURLY_VIEW}
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket(INTERVAL '1 hour', measured_at) AS bucket_start,
               patient_id, metric,
               min(value) AS min, max(value) AS max, avg(value) AS avg, count(*) AS count
        FROM readings
        GROUP BY time_bucket(INTERVAL '1 hour', measured_at), patient_id, metric
        WITH NO DATA""",
    f"SELECT add_continuous_aggregate_policy('{HOURLY_VIEW}', start_offset => INTERVAL '3 days',"
    " end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '30 minutes',"
    " if_not_exists => TRUE)",
)


def is_available(conn: psycopg.Connection[object]) -> bool:
    """True when the server can load the timescaledb extension."""
    row = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    return row is not None


def is_enabled(conn: psycopg.Connection[object]) -> bool:
    """True when ``readings`` is already a hypertable."""
    row = conn.execute(
        "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"
    ).fetchone()
    if row is None:
        return False
    row = conn.execute(
        "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = 'readings'"
    ).fetchone()
    return row is not None


def setup(conn: psycopg.Connection[object]) -> None:
    """Turn ``readings`` into a hypertable with compression and the hourly aggregate (idempotent).

    The continuous aggregate cannot be created inside a transaction block, so ``conn`` must be in
    autocommit mode.
    """
    if is_enabled(conn):
        logger.debug("TimescaleDB already set up")
        return
    for statement in _SETUP:
        conn.execute(statement)
    logger.info("TimescaleDB: readings is a hypertable with compression and %s", HOURLY_VIEW)


def set_retention(conn: psycopg.Connection[object], days: int | None) -> None:
    """Apply (or remove) the raw-readings retention policy."""
    conn.execute("SELECT remove_retention_policy('readings', if_exists => TRUE)")
    if days:
        conn.execute(
            sql.SQL("SELECT add_retention_policy('readings', {}::interval)").format(
                sql.Literal(f"{int(days)} days")
            )
        )


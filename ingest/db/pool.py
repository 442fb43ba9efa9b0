"""The connection pool: the only way code gets a database connection."""

from __future__ import annotations

import logging
from typing import Any, Final

import psycopg
from psycopg_pool import ConnectionPool

from ingest.store.readings import prepare_session

logger = logging.getLogger(__name__)


# Notice a black-holed database connection (no reset ever arrives) within about a minute,
# instead of waiting for the kernel's default of hours.
KEEPALIVE: Final[dict[str, Any]] = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,
}


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SET TIME ZONE 'UTC'")
    conn.commit()
    prepare_session(conn)


def open_pool(conninfo: str, *, min_size: int = 1, max_size: int = 10, name: str = "rpm") -> ConnectionPool:
    """Open a pool whose connections are checked on checkout, so a database restart heals."""
    pool: ConnectionPool = ConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        name=name,
        configure=_configure,
        kwargs=KEEPALIVE,
        check=ConnectionPool.check_connection,
        reconnect_timeout=3600,
        open=False,
    )
    pool.open(wait=True, timeout=30)
    logger.info("database pool %s open (%d..%d connections)", name, min_size, max_size)
    return pool

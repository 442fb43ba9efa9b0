"""The connection pool: the only way code gets a database connection."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

import psycopg
from psycopg_pool import ConnectionPool

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


SessionSetup = Callable[[psycopg.Connection[Any]], None]


class _Configure:
    """Sets each new connection's session to UTC, then runs the caller's setup on it."""

    def __init__(self, prepare: SessionSetup | None) -> None:
        self._prepare = prepare

    def __call__(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.commit()
        if self._prepare is not None:
            self._prepare(conn)


def open_pool(
    conninfo: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    name: str = "rpm",
    prepare: SessionSetup | None = None,
) -> ConnectionPool:
    """Open a pool whose connections are checked on checkout, so a database restart heals.

    ``prepare`` runs once on each new connection (after its session is set to UTC) and leaves it
    idle, committed: the store layer's per-session setup, supplied by the composition root.
    """
    pool: ConnectionPool = ConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        name=name,
        configure=_Configure(prepare),
        kwargs=KEEPALIVE,
        check=ConnectionPool.check_connection,
        reconnect_timeout=3600,
        open=False,
    )
    pool.open(wait=True, timeout=30)
    logger.info("database pool %s open (%d..%d connections)", name, min_size, max_size)
    return pool

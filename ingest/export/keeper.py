"""The keeper loop every outbox destination runs beside its senders: on a connection of its own
(a busy pool or a slow peer never delays it), renew the senders' claim leases every ``interval_s``,
reconnecting after the database was away, until told to stop.

What is renewed (one outbox or several) and any upkeep on the same connection is the caller's
``tend``; the loop owns the connection, its reconnects and its closing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import psycopg


def keep_leases(
    name: str,
    conninfo: str,
    interval_s: float,
    wait: Callable[[float], bool],
    tend: Callable[[psycopg.Connection[Any]], object],
    log: logging.Logger,
) -> None:
    """Call ``tend(conn)`` each time ``wait(interval_s)`` returns false (not stopping).

    A :class:`psycopg.Error` is logged as ``"<name> keeper: storage unavailable"`` and the
    connection is dropped, to be opened again on the next turn; the rows keep their leases until
    they run out, so a short outage costs nothing.
    """
    conn: psycopg.Connection[Any] | None = None
    try:
        while not wait(interval_s):
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
                tend(conn)
            except psycopg.Error as exc:
                log.warning("%s keeper: storage unavailable (%s)", name, exc)
                if conn is not None:
                    conn.close()
                conn = None
    finally:
        if conn is not None:
            conn.close()

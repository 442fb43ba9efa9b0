"""Rows as dicts: run one statement on a connection and fetch its first row or all its rows.

The plain case of every SQL module (a select, or a write with ``RETURNING``). Anything else keeps
its own cursor: COPY, ``executemany``, pipelines, server-side iteration, binary or tuple rows.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import psycopg
from psycopg.abc import Params, QueryNoTemplate
from psycopg.rows import dict_row

# What ``Cursor.execute`` takes with parameters: a literal string, bytes, or a ``psycopg.sql`` SQL or
# Composed. Statements built as f-strings from the modules' own constants pass too: mypy reads
# ``LiteralString`` as ``str``. Values always go in ``params``, never into the text.
Query: TypeAlias = QueryNoTemplate


def fetch_one(
    conn: psycopg.Connection[Any], query: Query, params: Params | None = None
) -> dict[str, Any] | None:
    """The first row the statement returns, as a dict (None when it returns none)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchone()


def fetch_all(
    conn: psycopg.Connection[Any], query: Query, params: Params | None = None
) -> list[dict[str, Any]]:
    """Every row the statement returns, as dicts, in the order it returns them."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchall()

"""Rows as dicts (``ingest.db.rows``) against a real database: first row, all rows, none."""

from __future__ import annotations

import psycopg
from psycopg import sql

from ingest.db.rows import fetch_all, fetch_one


def test_fetch_one_is_the_first_row_as_a_dict_or_none(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        assert fetch_one(conn, "SELECT 1 AS a, 'x' AS b") == {"a": 1, "b": "x"}
        assert fetch_one(conn, "SELECT n FROM generate_series(%s::int, %s::int) AS n", (3, 5)) == {"n": 3}
        assert fetch_one(conn, "SELECT 1 AS a WHERE false") is None


def test_fetch_all_is_every_row_in_order_with_named_or_positional_params(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        query = "SELECT n FROM generate_series(%(lo)s::int, %(hi)s::int) AS n"
        rows = fetch_all(conn, query, {"lo": 1, "hi": 3})
        assert rows == [{"n": 1}, {"n": 2}, {"n": 3}]
        assert fetch_all(conn, "SELECT 1 AS a WHERE false") == []


def test_composed_statements_run_like_strings(db_url: str) -> None:
    query = sql.SQL("SELECT {} AS {}").format(sql.Literal(7), sql.Identifier("seven"))
    with psycopg.connect(db_url) as conn:
        assert fetch_one(conn, query) == {"seven": 7}
        assert fetch_all(conn, query) == [{"seven": 7}]


def test_a_write_with_returning_is_fetched_in_the_caller_s_transaction(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        row = fetch_one(
            conn,
            "INSERT INTO clinics (id, name) VALUES (%s, %s) RETURNING id, name",
            ("rows-test", "Rows"),
        )
        assert row == {"id": "rows-test", "name": "Rows"}
        conn.rollback()
        assert fetch_one(conn, "SELECT id FROM clinics WHERE id = %s", ("rows-test",)) is None

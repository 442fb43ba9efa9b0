"""Databases of the tests' own on the PostgreSQL server named by ``RPM_TEST_DATABASE_URL``.

``RUN_ID`` tells this run's databases (and MQTT topic prefixes) from those of runs beside it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from ingest.db.migrate import available_migrations

ADMIN_URL = os.environ.get(
    "RPM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
RUN_ID = os.environ.get("RPM_TEST_RUN_ID") or uuid.uuid4().hex[:8]

def database_url(name: str) -> str:
    parts = urlsplit(ADMIN_URL)
    return urlunsplit(parts._replace(path="/" + name))


def _admin_execute(statement: sql.Composed) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(statement)


def create_database(name: str, template: str | None = None) -> str:
    if template is None:
        _admin_execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    else:
        _admin_execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
    return database_url(name)


def drop_database(name: str) -> None:
    _admin_execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def database_before(version: int) -> Iterator[str]:
    """A database of its own holding the migrations before ``version`` only (run as plain SQL):
    data written there predates migration ``version``, which the test then applies. Dropped after."""
    name = f"rpm_test_{RUN_ID}_pre{version}_{uuid.uuid4().hex[:8]}"
    url = create_database(name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            for migration in available_migrations():
                if migration.version < version:
                    conn.execute(migration.sql)
        yield url
    finally:
        drop_database(name)

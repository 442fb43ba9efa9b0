"""Databases of the tests' own on the PostgreSQL server named by ``RPM_TEST_DATABASE_URL``.

``RUN_ID`` tells this run's databases (and MQTT topic prefixes) from those of runs beside it.
"""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

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

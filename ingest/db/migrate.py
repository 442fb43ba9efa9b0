"""Versioned schema migrations: numbered SQL files applied once each, under an advisory lock.

After the files, the data the code owns is brought in step on every run (idempotently, writing
nothing when in step): the alert rule kinds and their default rules, from the kinds' registry.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Final

import psycopg

from ingest.alerts.kinds import REGISTRY
from ingest.alerts.kinds.sync import sync_kinds
from ingest.db import timescale
from ingest.errors import MigrationError

logger = logging.getLogger(__name__)

_LOCK_KEY: Final = 0x52504D5F4D494752  # "RPM_MIGR": one migrator at a time across processes
_NAME_RE: Final = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    """The packaged migrations, ordered by version; duplicate versions are an error."""
    found: dict[int, Migration] = {}
    for entry in resources.files("ingest.db").joinpath("migrations").iterdir():
        match = _NAME_RE.match(entry.name)
        if match is None:
            continue
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migrations share version {version:04d}")
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def migrate(conninfo: str, *, timescale_mode: str = "auto") -> list[int]:
    """Apply pending migrations; return the versions applied.

    ``timescale_mode``: ``auto`` sets up TimescaleDB when the extension is available, ``off`` never.
    """
    applied_now: list[int] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {
                row[0]: row[1]
                for row in conn.execute("SELECT version, checksum FROM schema_migrations")
            }
            known = available_migrations()
            newest_known = known[-1].version if known else 0
            if done and max(done) > newest_known:
                raise MigrationError(
                    f"database schema is at version {max(done)}, newer than this code "
                    f"({newest_known}); upgrade the service"
                )
            for migration in known:
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        logger.warning(
                            "migration %04d_%s changed after it was applied",
                            migration.version,
                            migration.name,
                        )
                    continue
                _apply(conn, migration)
                applied_now.append(migration.version)
            sync_kinds(conn, REGISTRY)
            if timescale_mode == "auto" and timescale.is_available(conn):
                timescale.setup(conn)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now


def _apply(conn: psycopg.Connection[object], migration: Migration) -> None:
    logger.info("applying migration %04d_%s", migration.version, migration.name)
    try:
        with conn.transaction():
            conn.execute(migration.sql)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
    except psycopg.Error as exc:
        raise MigrationError(
            f"migration {migration.version:04d}_{migration.name} failed: {exc}"
        ) from exc

from __future__ import annotations

import psycopg

from ingest.db.migrate import available_migrations, migrate


def test_migrations_are_ordered_and_start_at_one() -> None:
    versions = [m.version for m in available_migrations()]
    assert versions[0] == 1 and versions == sorted(set(versions))


def test_migrate_is_idempotent_and_records_versions(db_url: str) -> None:
    # The template was migrated already: nothing left to apply.
    assert migrate(db_url) == []
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
        assert [r[0] for r in rows] == [m.version for m in available_migrations()]
        # the default clinic always exists
        assert conn.execute("SELECT name FROM clinics WHERE id = 'default'").fetchone()

"""``rpm-ingest migrate``."""

from __future__ import annotations

import click

from ingest.db.migrate import migrate as apply_migrations
from ingest.embedded.postgres import embedded_postgres
from ingest.logconfig import configure_logging
from ingest.settings import load_settings


@click.command()
def migrate() -> None:
    """Apply database migrations (serve also does this at start-up)."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    if settings.database_url is None:
        with embedded_postgres(settings.data_dir) as url:
            applied = apply_migrations(url)
    else:
        applied = apply_migrations(settings.database_url)
    click.echo(f"applied: {', '.join(map(str, applied))}" if applied else "schema is up to date")

"""``rpm-ingest token create|revoke``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import click
import psycopg

from ingest.db.migrate import migrate
from ingest.embedded.postgres import embedded_postgres
from ingest.errors import IngestError
from ingest.logconfig import configure_logging
from ingest.settings import load_settings
from ingest.store import tokens


@contextmanager
def database() -> Iterator[psycopg.Connection[Any]]:
    """A migrated database connection from the settings (embedded when no URL is set)."""
    settings = load_settings()
    configure_logging("WARNING", settings.log_format)
    with _url(settings.database_url, settings.data_dir) as url:
        migrate(url)
        with psycopg.connect(url) as conn:
            yield conn


@contextmanager
def _url(url: str | None, data_dir: Any) -> Iterator[str]:
    if url is not None:
        yield url
    else:
        with embedded_postgres(data_dir) as embedded:
            yield embedded


def _fail_on_ingest_error(func: Callable[..., None]) -> Callable[..., None]:
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            func(*args, **kwargs)
        except (IngestError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


@click.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.option("--role", type=click.Choice(tokens.ROLES), required=True)
@click.option("--name", required=True, help="who or what uses the token")
@click.option("--clinic", default=None, help="clinic the token is scoped to (clinician)")
@click.option("--device", default=None, help="device a device token may post for")
@click.option("--expires-in-days", type=click.IntRange(1, 3650), default=None)
@_fail_on_ingest_error
def create(
    role: tokens.Role, name: str, clinic: str | None, device: str | None, expires_in_days: int | None
) -> None:
    """Create a token and print it once (only its hash is stored)."""
    expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    with database() as conn:
        secret, _ = tokens.create_token(
            conn, name=name, role=role, clinic_id=clinic, device_id=device, expires_at=expires
        )
    click.echo(secret)


@token.command("revoke")
@click.argument("token_id", type=click.UUID)
@_fail_on_ingest_error
def revoke(token_id: UUID) -> None:
    """Revoke a token by its id."""
    with database() as conn:
        tokens.revoke_token(conn, token_id)
    click.echo(f"revoked {token_id}")

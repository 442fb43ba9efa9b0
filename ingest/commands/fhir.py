"""``rpm-ingest fhir jwks|keygen``: the client key for SMART Backend Services."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from fhir_export.auth import SigningKey
from fhir_export.errors import AuthError


@click.group()
def fhir() -> None:
    """FHIR export helpers (SMART Backend Services client key)."""


def _key_path(key: Path | None) -> Path:
    if key is not None:
        return key
    configured = os.environ.get("RPM_FHIR_PRIVATE_KEY_FILE")
    if not configured:
        raise click.UsageError("give --key or set RPM_FHIR_PRIVATE_KEY_FILE")
    return Path(configured)


@fhir.command()
@click.option(
    "--key",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="PEM private key (default: RPM_FHIR_PRIVATE_KEY_FILE).",
)
def jwks(key: Path | None) -> None:
    """Print the public JWKS the EHR registers for this client (never the private key)."""
    try:
        signing = SigningKey.from_file(_key_path(key))
    except AuthError as exc:
        raise click.ClickException(exc.reason) from exc
    click.echo(json.dumps(signing.jwks(), indent=2))


@fhir.command()
@click.option(
    "--alg",
    type=click.Choice(["RS384", "ES384"]),
    default="ES384",
    show_default=True,
    help="Signature algorithm of the client assertion.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the PEM private key (mode 0600; refuses to overwrite).",
)
def keygen(alg: str, out: Path) -> None:
    """Create a client key, write it to --out, and print its public JWKS."""
    signing = SigningKey.generate(alg)
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise click.ClickException(f"{out} exists; not overwriting a key") from exc
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(signing.private_pem())
    click.echo(json.dumps(signing.jwks(), indent=2))

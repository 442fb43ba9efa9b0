"""The ``rpm-ingest`` command line. Each command lives in ``ingest.commands.<name>``."""

from __future__ import annotations

import sys

import click

from ingest.commands.ble import ble
from ingest.commands.devices import devices
from ingest.commands.fhir import fhir
from ingest.commands.gateway import gateway
from ingest.commands.migrate import migrate
from ingest.commands.serve import demo, serve
from ingest.commands.simulate import simulate
from ingest.commands.token import token
from ingest.errors import ConfigurationError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rpm-ingest")
def cli() -> None:
    """Remote patient monitoring ingestion service.

    Configuration comes from RPM_* environment variables (or a .env file); see README.md.
    """


cli.add_command(serve)
cli.add_command(demo)
cli.add_command(migrate)
cli.add_command(token)
cli.add_command(ble)
cli.add_command(devices)
cli.add_command(fhir)
cli.add_command(gateway)
cli.add_command(simulate)


def main() -> None:
    try:
        cli(prog_name="rpm-ingest")
    except ConfigurationError as exc:  # says which variable is wrong: no traceback needed
        click.echo(f"rpm-ingest: {exc}", err=True)
        sys.exit(2)

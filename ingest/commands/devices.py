"""``rpm-ingest devices provision|provision-service|revoke``: broker credentials for devices."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import click

from ingest.errors import IngestError
from ingest.placeholders import placeholder_reason
from ingest.security import mosquitto
from ingest.settings import load_settings

_RELOAD_HINT = (
    "the broker rereads these files on SIGHUP (docker compose kill -s HUP mosquitto; "
    "or kill -HUP <mosquitto pid>)"
)


def _fail_on_ingest_error(func: Callable[..., None]) -> Callable[..., None]:
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            func(*args, **kwargs)
        except IngestError as exc:
            raise click.ClickException(str(exc)) from None

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


def _files(password_file: Path | None, acl_file: Path | None) -> tuple[mosquitto.BrokerFiles, str]:
    settings = load_settings()
    password_file = password_file or settings.mqtt_password_file
    acl_file = acl_file or settings.mqtt_acl_file
    if password_file is None or acl_file is None:
        raise click.UsageError(
            "where are the broker's files? set RPM_MQTT_PASSWORD_FILE and RPM_MQTT_ACL_FILE"
            " or pass --password-file and --acl-file"
        )
    return mosquitto.BrokerFiles(password_file, acl_file), settings.mqtt_topic_prefix


def _password(from_stdin: bool) -> str:
    if not from_stdin:
        return mosquitto.new_password()
    password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 12:
        raise click.UsageError("a password from standard input needs at least 12 characters")
    return _not_placeholder(password, "the password from standard input")


def _not_placeholder(password: str, where: str) -> str:
    """The broker's password file never holds an example password, whatever RPM_ENVIRONMENT says."""
    reason = placeholder_reason(password)
    if reason is not None:
        raise click.UsageError(f"{where} is a placeholder, not a secret ({reason}); set a real one")
    return password


_file_options = [
    click.option(
        "--password-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
        help="Mosquitto password_file (default: RPM_MQTT_PASSWORD_FILE)",
    ),
    click.option(
        "--acl-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
        help="Mosquitto acl_file (default: RPM_MQTT_ACL_FILE)",
    ),
]


def _with_file_options(func: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(_file_options):
        func = option(func)
    return func


@click.group()
def devices() -> None:
    """Device credentials for the MQTT broker (Mosquitto password_file and acl_file)."""


@devices.command("provision")
@click.argument("device_id")
@click.option("--username", default=None, help="MQTT username (default: the device id)")
@click.option(
    "--publishes-for", "publishes_for", multiple=True, metavar="DEVICE",
    help="another device whose readings this one relays (a home gateway); repeatable",
)
@click.option("--password-stdin", is_flag=True, help="read the password from stdin instead of generating one")
@_with_file_options
@_fail_on_ingest_error
def provision(
    device_id: str,
    username: str | None,
    publishes_for: tuple[str, ...],
    password_stdin: bool,
    password_file: Path | None,
    acl_file: Path | None,
) -> None:
    """Give DEVICE broker credentials that may publish only to rpm/<DEVICE>/readings.

    Prints one JSON object with the username, the password (shown once: only its hash is kept)
    and the topic. Provisioning again replaces the password.
    """
    files, prefix = _files(password_file, acl_file)
    mosquitto.check_device_id(device_id)
    user = mosquitto.check_username(username or device_id)
    acl = mosquitto.device_acl(prefix, device_id, publishes_for)
    password = _password(password_stdin)
    mosquitto.set_user(files, user, password, acl)
    click.echo(
        json.dumps(
            {"username": user, "password": password, "topics": [line.split()[-1] for line in acl]}
        )
    )
    click.echo(_RELOAD_HINT, err=True)


@devices.command("provision-service")
@click.option("--username", default=None, help="default: the user in RPM_MQTT_URL")
@click.option("--password-stdin", is_flag=True, help="default: the password in RPM_MQTT_URL")
@_with_file_options
@_fail_on_ingest_error
def provision_service(
    username: str | None, password_stdin: bool, password_file: Path | None, acl_file: Path | None
) -> None:
    """Give the ingest service's own MQTT user read access to every device's readings topic.

    Without options the user and password are the service's own (RPM_MQTT_USERNAME and
    RPM_MQTT_PASSWORD, which may be a file in RPM_SECRETS_DIR, else those of RPM_MQTT_URL), so
    the broker and the service are configured from the same secret. A placeholder password
    (change-me...) is refused.
    """
    files, prefix = _files(password_file, acl_file)
    settings = load_settings()
    url = urlsplit(settings.mqtt_url or "")
    user = username or settings.mqtt_username or (unquote(url.username) if url.username else None)
    if user is None:
        raise click.UsageError("no username: pass --username or set RPM_MQTT_USERNAME or RPM_MQTT_URL")
    if password_stdin:
        password = _password(True)
    elif settings.mqtt_password is not None:
        password = _not_placeholder(settings.mqtt_password.get_secret_value(), "RPM_MQTT_PASSWORD")
    elif url.password:
        password = _not_placeholder(unquote(url.password), "the password of RPM_MQTT_URL")
    else:
        raise click.UsageError(
            "no password: pass --password-stdin or set RPM_MQTT_PASSWORD (or put one in RPM_MQTT_URL)"
        )
    mosquitto.set_user(files, mosquitto.check_username(user), password, mosquitto.service_acl(prefix))
    click.echo(f"provisioned service user {user}")
    click.echo(_RELOAD_HINT, err=True)


@devices.command("provision-monitor")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="read the password from stdin instead of generating one")
@_with_file_options
@_fail_on_ingest_error
def provision_monitor(
    username: str, password_stdin: bool, password_file: Path | None, acl_file: Path | None
) -> None:
    """Give USERNAME (a health check) the right to read the broker's uptime and nothing else."""
    files, _ = _files(password_file, acl_file)
    password = _password(password_stdin)
    mosquitto.set_user(files, mosquitto.check_username(username), password, mosquitto.monitor_acl())
    shown = {"username": username} if password_stdin else {"username": username, "password": password}
    click.echo(json.dumps(shown))
    click.echo(_RELOAD_HINT, err=True)


@devices.command("revoke")
@click.argument("username")
@_with_file_options
@_fail_on_ingest_error
def revoke(username: str, password_file: Path | None, acl_file: Path | None) -> None:
    """Remove USERNAME (a device id, unless provisioned with --username) from the broker's files."""
    files, _ = _files(password_file, acl_file)
    if not mosquitto.remove_user(files, username):
        raise click.ClickException(f"no MQTT user {username!r}")
    click.echo(f"revoked {username}")
    click.echo(_RELOAD_HINT, err=True)

"""How to reach the broker: RPM_MQTT_URL plus the RPM_MQTT_* settings, checked once at start-up."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal
from urllib.parse import unquote, urlsplit

from ingest.errors import ConfigurationError
from ingest.settings import Settings

DEFAULT_PORTS: Final = {"mqtt": 1883, "mqtts": 8883}
Protocol = Literal["5", "3.1.1"]


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """The parts of an ``mqtt://`` or ``mqtts://`` URL."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def display(self) -> str:
        """The address without credentials, for logs."""
        scheme = "mqtts" if self.tls else "mqtt"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"


def parse_url(url: str) -> BrokerAddress:
    """Parse ``mqtt[s]://[user[:password]@]host[:port]``; raise :class:`ConfigurationError`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"RPM_MQTT_URL is not a valid URL: {exc}") from None
    if parts.scheme not in DEFAULT_PORTS:
        raise ConfigurationError("RPM_MQTT_URL must start with mqtt:// or mqtts://")
    if not parts.hostname:
        raise ConfigurationError("RPM_MQTT_URL names no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigurationError("RPM_MQTT_URL takes no path, query or fragment")
    if port == 0:
        raise ConfigurationError("RPM_MQTT_URL port must be 1-65535")
    return BrokerAddress(
        host=parts.hostname,
        port=port or DEFAULT_PORTS[parts.scheme],
        tls=parts.scheme == "mqtts",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


@dataclass(frozen=True, slots=True)
class BrokerOptions:
    """Everything a client needs to open its session with the broker."""

    address: BrokerAddress
    client_id: str
    protocol: Protocol = "5"
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 24 * 3600
    receive_maximum: int = 1000
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    tls_insecure: bool = False
    reconnect_min_s: int = 1
    reconnect_max_s: int = 30

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for ``mqtts://`` (system CAs unless a CA file is given), else None."""
        if not self.address.tls:
            return None
        try:
            context = ssl.create_default_context(
                cafile=str(self.ca_file) if self.ca_file is not None else None
            )
            if self.cert_file is not None:
                context.load_cert_chain(
                    str(self.cert_file), str(self.key_file) if self.key_file is not None else None
                )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"MQTT TLS files cannot be used: {exc}") from None
        if self.tls_insecure:
            context.check_hostname = False  # the chain is still verified
        return context


def broker_options(settings: Settings, *, client_id: str | None = None) -> BrokerOptions:
    """Build and check the consumer's options from settings (``client_id`` overrides)."""
    if settings.mqtt_url is None:
        raise ConfigurationError("RPM_MQTT_URL is not set and no embedded broker runs")
    address = parse_url(settings.mqtt_url)
    username = settings.mqtt_username if settings.mqtt_username is not None else address.username
    password = (
        settings.mqtt_password.get_secret_value()
        if settings.mqtt_password is not None
        else address.password
    )
    if password is not None and username is None:
        raise ConfigurationError("an MQTT password needs a user name")
    address = BrokerAddress(address.host, address.port, address.tls, username, password)
    tls_files = (settings.mqtt_ca_file, settings.mqtt_cert_file, settings.mqtt_key_file)
    if not address.tls and any(f is not None for f in tls_files):
        raise ConfigurationError("RPM_MQTT_CA_FILE/CERT_FILE/KEY_FILE need an mqtts:// URL")
    if settings.mqtt_key_file is not None and settings.mqtt_cert_file is None:
        raise ConfigurationError("RPM_MQTT_KEY_FILE needs RPM_MQTT_CERT_FILE")
    for path in tls_files:
        if path is not None and not path.is_file():
            raise ConfigurationError(f"MQTT TLS file {path} does not exist")
    if settings.mqtt_reconnect_min_s > settings.mqtt_reconnect_max_s:
        raise ConfigurationError("RPM_MQTT_RECONNECT_MIN_S is larger than RPM_MQTT_RECONNECT_MAX_S")
    options = BrokerOptions(
        address=address,
        client_id=client_id or settings.mqtt_client_id,
        protocol=settings.mqtt_protocol,
        keepalive_s=settings.mqtt_keepalive_s,
        session_expiry_s=settings.mqtt_session_expiry_s,
        receive_maximum=settings.mqtt_receive_maximum,
        ca_file=settings.mqtt_ca_file,
        cert_file=settings.mqtt_cert_file,
        key_file=settings.mqtt_key_file,
        tls_insecure=settings.mqtt_tls_insecure,
        reconnect_min_s=settings.mqtt_reconnect_min_s,
        reconnect_max_s=settings.mqtt_reconnect_max_s,
    )
    options.ssl_context()  # fail at start-up, not at the first connection
    return options

"""Everything a client needs to open its session with the broker, checked once at start-up.

:func:`broker_options` is the one way to build :class:`BrokerOptions` from settings: the URL
(:func:`~devices.mqtt.address.parse_broker_url`), credentials that override the URL's, TLS files,
protocol version and client id. Every rule that refuses a setting raises
:class:`~devices.errors.BrokerConfigError` naming the setting, so the service can speak of
``RPM_MQTT_*`` variables and the gateway of its command-line options.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final, Literal, get_args

from devices.errors import BrokerConfigError
from devices.mqtt.address import BrokerAddress, parse_broker_url

Protocol = Literal["5", "3.1.1"]
PROTOCOLS: Final[tuple[str, ...]] = get_args(Protocol)
_MAX_CLIENT_ID_BYTES: Final = 65535  # an MQTT UTF-8 string


@dataclass(frozen=True, slots=True)
class BrokerOptions:
    """A checked broker configuration (build it with :func:`broker_options`)."""

    address: BrokerAddress
    client_id: str
    protocol: Protocol = "5"
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 24 * 3600
    """MQTT 5 session expiry of a persistent session (the consumer's)."""
    receive_maximum: int = 1000
    """MQTT 5 Receive Maximum announced to the broker (the consumer's in-flight window)."""
    ca_file: Path | None = None
    """CA bundle for ``mqtts://`` (default: the system's trust store)."""
    cert_file: Path | None = None
    """Client certificate (with its key in ``key_file`` or in the same file)."""
    key_file: Path | None = None
    tls_insecure: bool = False
    """Skip the host name check (the chain is still verified)."""
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
        except (OSError, ssl.SSLError) as exc:
            raise BrokerConfigError("ca_file", f"cannot be used as a CA bundle ({exc})") from None
        if self.cert_file is not None:
            try:
                context.load_cert_chain(
                    str(self.cert_file), str(self.key_file) if self.key_file is not None else None
                )
            except (OSError, ssl.SSLError) as exc:
                raise BrokerConfigError(
                    "cert_file", f"the client certificate and key cannot be used ({exc})"
                ) from None
        if self.tls_insecure:
            context.check_hostname = False  # the chain is still verified
        return context


def broker_options(
    url: str,
    *,
    client_id: str,
    protocol: str = "5",
    username: str | None = None,
    password: str | None = None,
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    tls_insecure: bool = False,
    keepalive_s: int = 30,
    session_expiry_s: int = 7 * 24 * 3600,
    receive_maximum: int = 1000,
    reconnect_min_s: int = 1,
    reconnect_max_s: int = 30,
) -> BrokerOptions:
    """Check the settings and build the options; raise :class:`BrokerConfigError`.

    ``username``/``password`` override those in the URL (so a password need not be in the URL).
    The TLS files must exist and load, and need an ``mqtts://`` URL; a key file needs a
    certificate file; a password needs a user name.
    """
    address = parse_broker_url(url)
    if username is not None:
        address = replace(address, username=username)
    if password is not None:
        address = replace(address, password=password)
    if address.password is not None and address.username is None:
        raise BrokerConfigError("password", "needs a user name")
    if protocol not in PROTOCOLS:
        raise BrokerConfigError("protocol", f"must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    if not client_id or "\x00" in client_id or len(client_id.encode()) > _MAX_CLIENT_ID_BYTES:
        raise BrokerConfigError("client_id", "must be 1-65535 bytes of UTF-8 without NUL")
    tls_files = {"ca_file": ca_file, "cert_file": cert_file, "key_file": key_file}
    for setting, path in tls_files.items():
        if path is None:
            continue
        if not address.tls:
            raise BrokerConfigError(setting, "is for TLS and needs an mqtts:// URL")
        if not path.is_file():
            raise BrokerConfigError(setting, f"{path} does not exist or is not a file")
    if key_file is not None and cert_file is None:
        raise BrokerConfigError("key_file", "needs a client certificate file")
    if not 1 <= reconnect_min_s <= reconnect_max_s:
        raise BrokerConfigError(
            "reconnect",
            f"the delays must be 1 <= minimum <= maximum (got {reconnect_min_s}, {reconnect_max_s})",
        )
    options = BrokerOptions(
        address=address,
        client_id=client_id,
        protocol="5" if protocol == "5" else "3.1.1",
        keepalive_s=keepalive_s,
        session_expiry_s=session_expiry_s,
        receive_maximum=receive_maximum,
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        tls_insecure=tls_insecure,
        reconnect_min_s=reconnect_min_s,
        reconnect_max_s=reconnect_max_s,
    )
    options.ssl_context()  # fail at start-up, not at the first connection
    return options

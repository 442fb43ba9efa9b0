"""The broker URL: ``mqtt://[user[:password]@]host[:port]`` or ``mqtts://…`` (TLS).

One parser for every reader of a broker URL (``RPM_MQTT_URL`` for the service and the simulator,
``--mqtt-url`` for the gateway). The rules:

- ``mqtt://`` (plain, default port 1883) or ``mqtts://`` (TLS, default port 8883), in lower case;
  nothing else (no ``tcp://``, ``ssl://``, ``ws://``);
- a host name, an IPv4 address or an IPv6 address in brackets (``mqtts://[::1]:8884``);
- a port of 1-65535 when given;
- optional user name and password, percent-encoded where they hold ``@ : / %`` and the like
  (``mqtt://hub%2F17:p%40ss@broker`` is user ``hub/17``, password ``p@ss``); a password given as
  ``user:@`` is the empty password, ``user@`` is no password;
- no path (a single ``/`` is allowed), query or fragment.

Anything else raises :class:`~devices.errors.BrokerConfigError` (setting ``url``) with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final
from urllib.parse import unquote, urlsplit

from devices.errors import BrokerConfigError

DEFAULT_PORTS: Final = {"mqtt": 1883, "mqtts": 8883}
_PREFIXES: Final = tuple(f"{scheme}://" for scheme in DEFAULT_PORTS)


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where the broker is and who we are to it (the parts of a broker URL)."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def display(self) -> str:
        """The address without credentials, fit for anyone to see (the public readiness check)."""
        return self._url(with_user=False)

    def redacted(self) -> str:
        """The address with the user name but never the password, for the operator's logs."""
        return self._url(with_user=True)

    def _url(self, *, with_user: bool) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}@" if with_user and self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{user}{host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """Parse a broker URL (rules in the module docstring); raise :class:`BrokerConfigError`."""
    if not url.startswith(_PREFIXES):
        raise BrokerConfigError("url", "broker URL must start with mqtt:// or mqtts://")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BrokerConfigError("url", f"broker URL is not a valid URL ({exc})") from None
    if not parts.hostname:
        raise BrokerConfigError("url", "broker URL names no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise BrokerConfigError("url", "broker URL takes no path, query or fragment")
    if port == 0:
        raise BrokerConfigError("url", "broker URL port must be 1-65535")
    return BrokerAddress(
        host=parts.hostname,
        port=port or DEFAULT_PORTS[parts.scheme],
        tls=parts.scheme == "mqtts",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )

"""The gateway's MQTT transport over paho-mqtt 2: the only gateway module importing paho.

paho runs its network loop on its own thread (``loop_start``), reconnects by itself with
exponential delay, and re-sends QoS 1 messages that were in flight when a connection dropped.
Its callbacks only hop onto the asyncio loop (``call_soon_threadsafe``); everything else happens
in :mod:`devices.gateway.publisher`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from devices.errors import ConfigurationError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    url: str
    """``mqtt://[user[:password]@]host[:port]`` or ``mqtts://…`` (TLS, default port 8883)."""
    client_id: str
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    keepalive: int = 30
    ca_file: Path | None = None
    """CA bundle for ``mqtts://`` (default: the system's trust store)."""
    cert_file: Path | None = None
    """Client certificate (per-device credential), with ``key_file``."""
    key_file: Path | None = None
    reconnect_max_delay: int = 60


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    def redacted(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"broker URL is malformed: {exc}") from None
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ConfigurationError("broker URL must start with mqtt:// or mqtts://")
    if not parts.hostname:
        raise ConfigurationError("broker URL names no host")
    tls = parts.scheme in ("mqtts", "ssl")
    return BrokerAddress(
        host=parts.hostname,
        port=port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


class TransportEvents(Protocol):
    """What the transport reports, always called on the asyncio loop."""

    def on_connected(self) -> None: ...

    def on_disconnected(self, reason: str) -> None: ...

    def on_acknowledged(self, mid: int, accepted: bool, reason: str) -> None: ...


class PahoTransport:
    """QoS 1 publishing through paho; ``start`` connects in the background and keeps at it."""

    def __init__(self, settings: BrokerSettings, *, max_inflight: int) -> None:
        self._settings = settings
        self._address = parse_broker_url(settings.url)
        version = mqtt.MQTTv5 if settings.protocol == "5" else mqtt.MQTTv311
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=version,
            clean_session=True if version == mqtt.MQTTv311 else None,
        )
        self._client.max_inflight_messages_set(max_inflight)
        self._client.reconnect_delay_set(1, settings.reconnect_max_delay)
        if self._address.username:
            self._client.username_pw_set(self._address.username, self._address.password)
        if self._address.tls:
            self._client.tls_set(
                ca_certs=str(settings.ca_file) if settings.ca_file else None,
                certfile=str(settings.cert_file) if settings.cert_file else None,
                keyfile=str(settings.key_file) if settings.key_file else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: TransportEvents | None = None
        self._stopping = False
        self.connected = False

    @property
    def address(self) -> BrokerAddress:
        return self._address

    def start(self, events: TransportEvents) -> None:
        self._loop = asyncio.get_running_loop()
        self._events = events
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        logger.info("connecting to the broker at %s", self._address.redacted())
        self._client.connect_async(self._address.host, self._address.port, self._settings.keepalive)
        self._client.loop_start()

    def publish(self, topic: str, payload: bytes) -> int:
        """Hand a QoS 1 message to paho; returns its message id."""
        info = self._client.publish(topic, payload, qos=1)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            # paho keeps NO_CONN messages and sends them on reconnect; anything else is refused
            raise ConfigurationError(f"the MQTT client refused the message: {mqtt.error_string(info.rc)}")
        return info.mid

    async def stop(self) -> None:
        self._stopping = True
        self._client.disconnect()
        await asyncio.get_running_loop().run_in_executor(None, self._client.loop_stop)
        self.connected = False

    # paho thread -> asyncio loop -----------------------------------------------------------

    def _hop(self, fn: Any, *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)

    def _on_connect(
        self, _c: mqtt.Client, _u: Any, _flags: Any, reason: ReasonCode, _p: Properties | None
    ) -> None:
        if reason.is_failure:
            logger.warning("broker refused the connection: %s", reason)
            return
        self._hop(self._connected)

    def _connected(self) -> None:
        self.connected = True
        logger.info("connected to the broker at %s", self._address.redacted())
        if self._events is not None:
            self._events.on_connected()

    def _on_disconnect(
        self, _c: mqtt.Client, _u: Any, _flags: Any, reason: ReasonCode, _p: Properties | None
    ) -> None:
        self._hop(self._disconnected, str(reason))

    def _disconnected(self, reason: str) -> None:
        was = self.connected
        self.connected = False
        if was and not self._stopping:
            logger.warning("lost the broker connection (%s); readings stay queued", reason)
        if self._events is not None:
            self._events.on_disconnected(reason)

    def _on_publish(
        self, _c: mqtt.Client, _u: Any, mid: int, reason: ReasonCode, _p: Properties
    ) -> None:
        self._hop(self._acknowledged, mid, not reason.is_failure, str(reason))

    def _acknowledged(self, mid: int, accepted: bool, reason: str) -> None:
        if self._events is not None:
            self._events.on_acknowledged(mid, accepted, reason)

"""A paho-mqtt 2 client configured from :class:`~devices.mqtt.options.BrokerOptions`.

The one place a paho client is built: protocol version and session, credentials, TLS context,
reconnect backoff (paho reconnects by itself once its network loop runs), and the arguments of
``connect``. The only module of ``devices`` that imports paho: :func:`on_publisher_events` and
:func:`publish_qos1` give the publisher paho's events and results as plain values. The service's
consumer adds its own callbacks.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any, Final

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from devices.errors import PublishError
from devices.mqtt.buffered_socket import BufferedSocket
from devices.mqtt.options import BrokerOptions

logger = logging.getLogger(__name__)


class _LoopAfterOwnDisconnect(logging.Filter):
    """paho 2 logs "Client is not connected ... Last known Connection State: MQTT_CS_DISCONNECTED"
    (or _DISCONNECTING) at ERROR when its network thread runs once more between our
    ``disconnect()`` and ``loop_stop()``. Those two states come only from ``disconnect()``, so
    nothing is wrong: the line is DEBUG. A lost connection (MQTT_CS_CONNECTION_LOST) is untouched."""

    def __init__(self, log: logging.Logger) -> None:
        super().__init__()
        self._log = log

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg
        if (
            record.levelno == logging.ERROR
            and isinstance(message, str)
            and message.startswith("Client is not connected")
            and message.endswith(("MQTT_CS_DISCONNECTED", "MQTT_CS_DISCONNECTING"))
        ):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return self._log.isEnabledFor(logging.DEBUG)
        return True


def _paho_log(log: logging.Logger) -> logging.Logger:
    if not any(isinstance(f, _LoopAfterOwnDisconnect) for f in log.filters):
        log.addFilter(_LoopAfterOwnDisconnect(log))
    return log


# Packets read in one go while the buffer holds more (the loop then writes pending acks).
_READS_PER_LOOP: Final = 256
# The properties of every PUBLISH that carries none: one shared, never-modified instance.
_NO_PROPERTIES: Final = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]


class _BufferedReadsClient(paho.Client):
    """A paho client that reads its plain-TCP socket through :class:`BufferedSocket` and, once a
    packet is handled, goes on with the next one while the buffer holds bytes (up to
    ``_READS_PER_LOOP``) instead of a trip through ``select`` per packet. TLS and websocket
    connections are left as paho makes them (the SSL layer buffers records already).

    An MQTT 5 QoS 1 PUBLISH without properties (every reading a device sends) is decoded here in
    a few slices instead of by paho's general decoder, which built a ``Properties`` object and a
    debug line per message (about a fifth of the network thread's time under a burst); any other
    PUBLISH, and any packet too short for its own lengths, goes to paho's decoder. A message decoded
    here goes straight to ``on_message`` unless a per-topic callback was ever added
    (``message_callback_add``): paho searched them for every message.

    Relies on methods of paho-mqtt 2 (``_create_socket``, ``loop_read``, ``_handle_publish``,
    ``_handle_on_message``, ``_in_callback_mutex``, ``_easy_log``):
    ``tests/devices/mqtt/test_buffered_reads.py`` fails if a paho release
    stops calling them or decodes a PUBLISH differently."""

    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        if type(sock) is socket.socket and not self._ssl and self._transport == "tcp":
            return BufferedSocket(sock)
        return sock

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc: MQTTErrorCode = super().loop_read(max_packets)
        sock = self._sock
        if not isinstance(sock, BufferedSocket):
            return rc
        buffered: BufferedSocket = sock
        for _ in range(_READS_PER_LOOP):
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or not buffered.pending() or self._sock is not buffered:
                break
            rc = super().loop_read(max_packets)
        return rc

    def _handle_publish(self) -> MQTTErrorCode:
        packet = self._in_packet["packet"]
        header = self._in_packet["command"]
        if (
            self._protocol != paho.MQTTv5
            or (header & 0x06) != 0x02  # QoS 1 only
            or not self._manual_ack
            or (self._logger is not None and self._logger.isEnabledFor(logging.DEBUG))
            or self.on_log is not None  # paho's debug line is wanted
        ):
            return super()._handle_publish()
        topic_end = 2 + int.from_bytes(packet[:2], "big")
        # topic, message id, then the property length: one byte 0 when there are none
        if len(packet) < topic_end + 3 or packet[topic_end + 2] != 0:
            return super()._handle_publish()
        message = paho.MQTTMessage(
            mid=int.from_bytes(packet[topic_end : topic_end + 2], "big"),
            topic=bytes(packet[2:topic_end]),
        )
        message.dup = (header & 0x08) != 0
        message.qos = 1
        message.retain = (header & 0x01) != 0
        message.properties = _NO_PROPERTIES
        message.payload = bytes(packet[topic_end + 3 :])
        message.timestamp = time.monotonic()
        if self._filtered_callbacks:
            self._handle_on_message(message)
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        # paho's _handle_on_message without its search of the (empty) per-topic callbacks, which
        # decoded the topic twice and walked the topic tree for every message
        on_message = self.on_message
        if on_message is not None:
            with self._in_callback_mutex:
                try:
                    on_message(self, self._userdata, message)
                except Exception as err:
                    self._easy_log(paho.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                    if not self.suppress_exceptions:
                        raise
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    _filtered_callbacks = False  # set for good once a per-topic callback is added

    def message_callback_add(self, sub: str, callback: Any) -> None:
        self._filtered_callbacks = True
        super().message_callback_add(sub, callback)


def new_client(
    options: BrokerOptions,
    *,
    manual_ack: bool = False,
    persistent: bool = False,
    buffered_reads: bool = False,
    log: logging.Logger | None = None,
) -> paho.Client:
    """A paho client configured from ``options`` (protocol, session, credentials, TLS, backoff).

    ``persistent``: the broker keeps the session (subscriptions, queued and unacknowledged
    messages) across disconnects; MQTT 5 also needs :func:`connect_kwargs` with the same value.
    ``buffered_reads``: for a client that receives many messages (the service's consumer): fewer
    system calls and loop turns per packet (see :class:`_BufferedReadsClient`).
    ``log`` receives paho's own log lines (default: this module's logger).
    """
    v5 = options.protocol == "5"
    client_class = _BufferedReadsClient if buffered_reads else paho.Client
    client = client_class(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=options.client_id,
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
        clean_session=None if v5 else not persistent,
        manual_ack=manual_ack,
        reconnect_on_failure=True,
    )
    client.enable_logger(_paho_log(log or logger))
    if options.address.username is not None:
        client.username_pw_set(options.address.username, options.address.password)
    context = options.ssl_context()
    if context is not None:
        client.tls_set_context(context)
        if options.tls_insecure:
            client.tls_insecure_set(True)
    client.reconnect_delay_set(options.reconnect_min_s, options.reconnect_max_s)
    return client


def connect_kwargs(options: BrokerOptions, *, persistent: bool = False) -> dict[str, Any]:
    """Arguments of ``connect``: keepalive; MQTT 5 clean start, session expiry, Receive Maximum."""
    kwargs: dict[str, Any] = {"keepalive": options.keepalive_s}
    if options.protocol == "5":
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = options.session_expiry_s if persistent else 0
        props.ReceiveMaximum = options.receive_maximum
        kwargs.update(clean_start=not persistent, properties=props)
    return kwargs


def connect_async(client: paho.Client, options: BrokerOptions, *, persistent: bool = False) -> None:
    """Start connecting in the background (paho's network thread keeps trying, with backoff)."""
    kwargs = connect_kwargs(options, persistent=persistent)
    client.connect_async(options.address.host, options.address.port, **kwargs)
    client.loop_start()


def on_publisher_events(
    client: paho.Client,
    *,
    connected: Callable[[bool, str], None],
    disconnected: Callable[[str], None],
    acknowledged: Callable[[int, bool, str], None],
) -> None:
    """Report the connection's answers (accepted?, reason), losses (reason) and PUBACKs
    (message id, accepted?, reason), on paho's network thread."""

    def on_connect(
        _c: paho.Client, _u: Any, _f: paho.ConnectFlags, reason: ReasonCode, _p: Properties | None
    ) -> None:
        connected(not reason.is_failure, str(reason))

    def on_disconnect(
        _c: paho.Client, _u: Any, _f: paho.DisconnectFlags, reason: ReasonCode, _p: Properties | None
    ) -> None:
        disconnected(str(reason))

    def on_publish(_c: paho.Client, _u: Any, mid: int, reason: ReasonCode, _p: Properties | None) -> None:
        acknowledged(mid, not reason.is_failure, str(reason))

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_publish = on_publish


def publish_qos1(client: paho.Client, topic: str, payload: bytes) -> int:
    """Hand a QoS 1 message to the client and return its message id; :class:`PublishError` if
    the client refuses it. While disconnected the client keeps it and sends it on reconnect."""
    info = client.publish(topic, payload, qos=1)
    if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
        raise PublishError(f"the MQTT client refused the message: {paho.error_string(info.rc)}")
    return info.mid

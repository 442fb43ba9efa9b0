"""The consumer's MQTT connection: the one place the consumer touches paho.

The client is built by :mod:`devices.mqtt.client` from the same checked options as every other
MQTT client of the project; the consumer logic is here.

QoS 1 on a persistent session (stable client id; MQTT 5 ``clean_start=False`` with a session
expiry, or ``clean_session=False`` on 3.1.1), ``manual_ack=True``, reconnect with backoff.
The message callback only converts and hands over (it may block when the hand-off is full, which
is the back-pressure). Acknowledgements are sent only on the connection the message came on.

Leaving a shared group for good (:meth:`ConsumerSession.unsubscribe`, then ``stop(end_session=True)``)
hands this member's share back: the broker stops dispatching to it, and the session, emptied by
then, ends with the MQTT 5 DISCONNECT's Session Expiry Interval 0 (docs/scaling.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from devices.mqtt.client import connect_async, new_client
from devices.mqtt.options import BrokerOptions
from ingest.metrics import Metrics
from ingest.mqtt.delivery import Delivery, TopicReader, to_delivery

logger = logging.getLogger(__name__)

Sink = Callable[[Delivery], bool]
_SESSION_TAKEN_OVER = 0x8E  # DISCONNECT reason: a connection with the same client id took over


class ConsumerSession:
    def __init__(
        self, options: BrokerOptions, *, topic_filter: str, prefix: str, sink: Sink, metrics: Metrics,
        subscribe: bool = True,
    ) -> None:
        """``subscribe=False``: take over a session left behind (``topic_filter`` is what it had
        subscribed to) without subscribing again: receive what waited in it, then leave."""
        self.options = options
        self.topic_filter = topic_filter
        self.prefix = prefix
        self._sink = sink
        self._metrics = metrics
        self._topics = TopicReader(prefix)
        self._client = new_client(
            options, manual_ack=True, persistent=True, buffered_reads=True,
            log=logging.getLogger("ingest.mqtt.paho"),
        )
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_unsubscribe = self._on_unsubscribe
        self._client.on_message = self._on_message
        self._lock = threading.Lock()
        self._generation = 0
        self._connected = False
        self._subscribed = False
        self._closed = False
        self._ever_connected = False
        self._last_problem = "not connected yet"
        self._since = time.monotonic()
        self._leaving = not subscribe  # left for good: a reconnect must not subscribe again
        self.taken_over = False  # another connection took this client id's session
        self._unsubscribed = threading.Event()
        self._last_activity = time.monotonic()  # last message received or acknowledgement sent

    # --- life cycle (called by the consumer)
    def start(self) -> None:
        connect_async(self._client, self.options, persistent=True)
        logger.info(
            "MQTT consumer %s connecting to %s (MQTT %s), subscribing to %s",
            self.options.client_id, self.options.address.display, self.options.protocol,
            self.topic_filter,
        )

    def stop(self, *, end_session: bool = False) -> None:
        """Disconnect cleanly (acks already queued are written first), then end the network thread.

        ``end_session``: MQTT 5 DISCONNECT with Session Expiry Interval 0, so the broker drops the
        session at once (call it only once everything received is acknowledged: a message still
        unacknowledged in an ended session is gone). Otherwise the session stays for our return.
        """
        with self._lock:
            self._closed = True
        if self.options.protocol == "5":
            properties = None
            if end_session:
                properties = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
                properties.SessionExpiryInterval = 0
            self._client.disconnect(
                reasoncode=ReasonCode(PacketTypes.DISCONNECT, "Normal disconnection"),
                properties=properties,
            )
        else:
            self._client.disconnect()
        self._client.loop_stop()
        self._metrics.mqtt_connected.set(0)
        logger.info(
            "MQTT consumer %s disconnected (%s)", self.options.client_id,
            "session ended" if end_session and self.options.protocol == "5" else "session kept",
        )

    def unsubscribe(self, timeout_s: float) -> bool:
        """Leave the subscription for good (no resubscribe on a reconnect); True once the broker
        confirmed it (UNSUBACK) within ``timeout_s``. Messages already sent or queued for the
        session still arrive and must be stored and acknowledged before :meth:`stop`."""
        with self._lock:
            self._leaving = True
            connected = self._connected
        if not connected:
            return False
        result, _mid = self._client.unsubscribe(self.topic_filter)
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            logger.warning("MQTT unsubscribe could not be sent: %s", result)
            return False
        return self._unsubscribed.wait(timeout_s)

    @property
    def connected(self) -> bool:
        with self._lock:
            return self._connected

    def quiet_s(self) -> float:
        """Seconds since the last message arrived or acknowledgement went out (after which the
        broker may send what it queued for us)."""
        return time.monotonic() - self._last_activity

    # --- acknowledgements (called by the writer, after commit)
    def ack(self, deliveries: Sequence[Delivery]) -> int:
        """Acknowledge, in order, the deliveries that came on the current connection.

        Returns how many were acknowledged; the others arrived on a connection that is gone, so
        the broker will deliver them again (and the store will absorb the repeat).
        """
        sent = 0
        with self._lock:
            if self._closed or not self._connected:
                return 0
            for d in deliveries:
                if d.generation != self._generation:
                    continue
                if d.qos > 0:
                    rc = self._client.ack(d.mid, d.qos)
                    if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                        logger.warning("MQTT ack of message %d failed: %s", d.mid, rc)
                        continue
                sent += 1
            self._last_activity = time.monotonic()  # an ack frees room: the broker may send more
        return sent

    # --- state for readiness
    def status(self) -> tuple[bool, str]:
        with self._lock:
            if self._connected and self._subscribed:
                return True, f"connected to {self.options.address.display}"
            age = time.monotonic() - self._since
            return False, f"{self._last_problem} ({age:.0f} s)"

    # --- paho callbacks (network thread)
    def _on_connect(
        self, client: paho.Client, _: Any, flags: paho.ConnectFlags, reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            with self._lock:
                self._last_problem = f"broker refused the connection: {reason}"
                self._since = time.monotonic()
            logger.error("MQTT broker %s refused the connection: %s", self.options.address.display, reason)
            return
        with self._lock:
            self._generation += 1
            self._connected = True
            self.taken_over = False
            self._subscribed = False
            self._last_problem = "subscribing"
            first = not self._ever_connected
            self._ever_connected = True
        self._metrics.mqtt_connects.inc()
        self._metrics.mqtt_connected.set(1)
        if not flags.session_present and not first:
            self._metrics.mqtt_sessions_lost.inc()
            logger.warning(
                "MQTT broker %s kept no session for %s: messages queued while we were away may be"
                " lost (check the broker's session expiry and persistence)",
                self.options.address.display, self.options.client_id,
            )
        logger.info(
            "MQTT connected to %s (session present: %s)", self.options.address.display,
            flags.session_present,
        )
        if self._leaving:
            return  # left the group: the session (if any) still delivers what it holds
        if self.options.protocol == "5":
            result, _mid = client.subscribe(self.topic_filter, options=SubscribeOptions(qos=1))
        else:
            result, _mid = client.subscribe(self.topic_filter, qos=1)
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            logger.warning("MQTT subscribe could not be sent: %s", result)

    def _on_subscribe(
        self, _client: paho.Client, _: Any, _mid: int, reasons: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        refused = [r for r in reasons if r.is_failure]
        with self._lock:
            self._subscribed = not refused
            self._last_problem = f"subscription refused: {refused[0]}" if refused else "ok"
            self._since = time.monotonic()
        if refused:
            logger.error("MQTT broker refused the subscription to %s: %s", self.topic_filter, refused[0])
        else:
            logger.info("MQTT subscribed to %s", self.topic_filter)

    def _on_unsubscribe(
        self, _client: paho.Client, _: Any, _mid: int, reasons: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        logger.info("MQTT unsubscribed from %s (%s)", self.topic_filter, reasons[0] if reasons else "ok")
        self._unsubscribed.set()

    def _on_connect_fail(self, _client: paho.Client, _: Any) -> None:
        with self._lock:
            if self._connected:
                return
            self._last_problem = f"cannot connect to {self.options.address.display}"
            self._since = time.monotonic()
        logger.warning("MQTT connection to %s failed, retrying with backoff", self.options.address.display)

    def _on_disconnect(
        self, _client: paho.Client, _: Any, _flags: paho.DisconnectFlags, reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        with self._lock:
            was_connected = self._connected
            self._generation += 1  # nothing received before this point is acked from now on
            self._connected = False
            self._subscribed = False
            self._last_problem = f"disconnected: {reason}"
            self._since = time.monotonic()
            closed = self._closed
            if reason.value == _SESSION_TAKEN_OVER:
                self.taken_over = True
        self._metrics.mqtt_connected.set(0)
        if was_connected and not closed:
            logger.warning(
                "MQTT connection to %s lost (%s), reconnecting", self.options.address.display, reason
            )

    def _on_message(self, _client: paho.Client, _: Any, message: paho.MQTTMessage) -> None:
        delivery = to_delivery(
            prefix=self.prefix,
            topic=message._topic,  # the raw bytes: a non-UTF-8 topic is dead-lettered, not fatal
            payload=message.payload,
            mid=message.mid,
            qos=message.qos,
            generation=self._generation,
            received_at=datetime.now(UTC),
            topics=self._topics,
        )
        self._metrics.mqtt_received.inc()
        self._last_activity = time.monotonic()
        self._sink(delivery)  # blocks while the inbox is full; False once stopping (not acked)

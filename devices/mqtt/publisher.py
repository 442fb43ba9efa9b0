"""The QoS 1 publisher: the gateway's, the simulator's and the demo devices'.

paho runs the network loop on its own thread, reconnects by itself with exponential delay and
sends again every QoS 1 message still unacknowledged after a reconnect, so nothing handed to
:meth:`Publisher.publish` is lost while the process lives. At most ``max_pending`` messages are
unacknowledged: ``publish`` waits (or gives up after its timeout) beyond that. ``flush`` waits for
the broker's PUBACKs.

A :class:`PublishListener` hears of connections, disconnections and each PUBACK, on paho's
network thread (the gateway hops them onto its event loop).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from devices.errors import PublishError, PublishTimeout
from devices.mqtt.client import connect_async, new_client, on_publisher_events, publish_qos1
from devices.mqtt.options import BrokerOptions

logger = logging.getLogger(__name__)


class PublishListener(Protocol):
    """What the publisher reports, called on paho's network thread."""

    def on_connected(self) -> None: ...

    def on_disconnected(self, reason: str) -> None: ...

    def on_acknowledged(self, mid: int, accepted: bool, reason: str) -> None: ...


class Publisher:
    """QoS 1 publishing on a non-persistent session; use as a context manager or start/close."""

    def __init__(
        self, options: BrokerOptions, *, max_pending: int = 1000, listener: PublishListener | None = None
    ) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.options = options
        self.max_pending = max_pending
        self._listener = listener
        self._client = new_client(options)
        self._client.max_inflight_messages_set(max_pending)
        self._client.max_queued_messages_set(0)
        on_publisher_events(
            self._client,
            connected=self._on_connect,
            disconnected=self._on_disconnect,
            acknowledged=self._on_publish,
        )
        self._cond = threading.Condition()
        self._pending = 0
        self._connected = threading.Event()
        self._answered = threading.Event()
        self._closing = False
        self._refused: str | None = None
        self.published = 0
        self.acked = 0
        self.failed = 0

    def __enter__(self) -> Publisher:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def start(self, timeout_s: float | None = 10.0) -> None:
        """Connect in the background, and keep reconnecting after any loss.

        With ``timeout_s``, wait for the broker's first answer and raise :class:`PublishError`
        if it refused us or did not answer in time. With None, return at once: messages
        published before the connection is up wait in the client.
        """
        logger.info(
            "MQTT publisher %s connecting to %s", self.options.client_id, self.options.address.redacted()
        )
        connect_async(self._client, self.options)
        if timeout_s is None:
            return
        self._answered.wait(timeout_s)
        if not self._connected.is_set():
            self.close()
            problem = self._refused or "no answer"
            raise PublishError(f"cannot connect to {self.options.address.display}: {problem}")

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def publish(self, topic: str, payload: bytes, *, timeout_s: float | None = None) -> int:
        """Publish at QoS 1, waiting while ``max_pending`` messages are unacknowledged; return
        the message id. :class:`PublishTimeout` if none was acknowledged within ``timeout_s``."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while self._pending >= self.max_pending:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise PublishTimeout("broker stopped acknowledging (publish timed out)")
                self._cond.wait(remaining if remaining is not None else 1.0)
            self._pending += 1
        try:
            mid = publish_qos1(self._client, topic, payload)
        except PublishError:
            with self._cond:
                self._pending -= 1
                self._cond.notify_all()
            raise
        self.published += 1
        return mid

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until every published message was acknowledged; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    @property
    def pending(self) -> int:
        """Messages published and not yet acknowledged."""
        with self._cond:
            return self._pending

    def close(self) -> None:
        """Disconnect and end the network thread (unacknowledged messages are not sent)."""
        self._closing = True
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    # the client's events (network thread) -----------------------------------------------------

    def _on_connect(self, accepted: bool, reason: str) -> None:
        if not accepted:
            self._refused = reason
            logger.warning(
                "MQTT broker %s refused the publisher: %s", self.options.address.redacted(), reason
            )
            self._answered.set()
            return
        self._connected.set()
        self._answered.set()
        logger.info(
            "MQTT publisher %s connected to %s", self.options.client_id, self.options.address.redacted()
        )
        if self._listener is not None:
            self._listener.on_connected()

    def _on_disconnect(self, reason: str) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was and not self._closing:
            logger.warning(
                "MQTT publisher lost the connection to %s (%s); reconnecting",
                self.options.address.redacted(), reason,
            )
        if self._listener is not None:
            self._listener.on_disconnected(reason)

    def _on_publish(self, mid: int, accepted: bool, reason: str) -> None:
        with self._cond:
            self._pending -= 1
            self.acked += 1
            if not accepted:
                self.failed += 1
            self._cond.notify_all()
        if self._listener is not None:
            self._listener.on_acknowledged(mid, accepted, reason)

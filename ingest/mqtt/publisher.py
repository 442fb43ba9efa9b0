"""A QoS 1 publisher with a bounded number of unacknowledged messages (simulator, load tests).

paho keeps every unacknowledged message and sends it again after a reconnect, so nothing handed
to :meth:`Publisher.publish` is lost while the process lives; ``flush`` waits for the broker's
acknowledgements.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ingest.errors import MqttError
from ingest.mqtt.config import BrokerOptions
from ingest.mqtt.session import connect_kwargs, new_client

logger = logging.getLogger(__name__)


class PublishError(MqttError):
    """The broker could not be reached, or refused what we published."""


class PublishTimeout(PublishError):
    """The broker did not acknowledge enough messages in time to take another one."""


class Publisher:
    def __init__(self, options: BrokerOptions, *, max_pending: int = 1000) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.options = options
        self.max_pending = max_pending
        self._client = new_client(options, manual_ack=False, persistent=False)
        self._client.max_inflight_messages_set(max_pending)
        self._client.max_queued_messages_set(0)
        self._client.on_connect = self._on_connect
        self._client.on_publish = self._on_publish
        self._cond = threading.Condition()
        self._pending = 0
        self._connected = threading.Event()
        self._answered = threading.Event()
        self._refused: str | None = None
        self.published = 0
        self.acked = 0
        self.failed = 0

    def __enter__(self) -> Publisher:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def start(self, timeout_s: float = 10.0) -> None:
        kwargs = connect_kwargs(self.options, persistent=False)
        self._client.connect_async(self.options.address.host, self.options.address.port, **kwargs)
        self._client.loop_start()
        self._answered.wait(timeout_s)
        if not self._connected.is_set():
            self.close()
            problem = self._refused or "no answer"
            raise PublishError(f"cannot connect to {self.options.address.display}: {problem}")

    def publish(self, topic: str, payload: bytes, *, timeout_s: float | None = None) -> None:
        """Publish at QoS 1, waiting while ``max_pending`` messages are unacknowledged."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while self._pending >= self.max_pending:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise PublishTimeout("broker stopped acknowledging (publish timed out)")
                self._cond.wait(remaining if remaining is not None else 1.0)
            self._pending += 1
        info = self._client.publish(topic, payload, qos=1)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            with self._cond:
                self._pending -= 1
                self._cond.notify_all()
            raise PublishError(f"publish refused locally: {info.rc}")
        self.published += 1

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
        with self._cond:
            return self._pending

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(
        self, _c: paho.Client, _: Any, _f: paho.ConnectFlags, reason: ReasonCode, _p: Properties | None
    ) -> None:
        if reason.is_failure:
            self._refused = str(reason)
            logger.warning("MQTT broker %s refused the publisher: %s", self.options.address.display, reason)
            self._answered.set()
            return
        self._connected.set()
        self._answered.set()

    def _on_publish(
        self, _c: paho.Client, _: Any, _mid: int, reason: ReasonCode, _p: Properties | None
    ) -> None:
        with self._cond:
            self._pending -= 1
            self.acked += 1
            if reason.is_failure:
                self.failed += 1
            self._cond.notify_all()

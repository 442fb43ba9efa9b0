"""The gateway's MQTT transport: the shared QoS 1 publisher, its events hopped onto asyncio.

:class:`~devices.mqtt.publisher.Publisher` connects in the background, reconnects by itself and
re-sends the QoS 1 messages that were in flight when a connection dropped. Its events arrive on
paho's network thread; this adapter only moves them onto the event loop
(``call_soon_threadsafe``). Everything else happens in :mod:`devices.gateway.publisher`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from devices.mqtt.address import BrokerAddress
from devices.mqtt.options import BrokerOptions
from devices.mqtt.publisher import Publisher

logger = logging.getLogger(__name__)


class TransportEvents(Protocol):
    """What the transport reports, always called on the asyncio loop."""

    def on_connected(self) -> None: ...

    def on_disconnected(self, reason: str) -> None: ...

    def on_acknowledged(self, mid: int, accepted: bool, reason: str) -> None: ...


class BrokerTransport:
    """QoS 1 publishing to the broker; ``start`` connects in the background and keeps at it."""

    def __init__(self, options: BrokerOptions, *, max_inflight: int) -> None:
        self._options = options
        self._publisher = Publisher(options, max_pending=max_inflight, listener=self)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: TransportEvents | None = None
        self._stopping = False
        self.connected = False
        """Whether the broker is connected, as last seen on the event loop."""

    @property
    def address(self) -> BrokerAddress:
        return self._options.address

    def start(self, events: TransportEvents) -> None:
        self._loop = asyncio.get_running_loop()
        self._events = events
        self._publisher.start(timeout_s=None)

    def publish(self, topic: str, payload: bytes) -> int:
        """Hand a QoS 1 message to the client; returns its message id.

        Never waits: the gateway keeps at most ``max_inflight`` messages unacknowledged itself,
        so a full window here is a bug and raises :class:`~devices.errors.PublishTimeout`.
        """
        return self._publisher.publish(topic, payload, timeout_s=0)

    async def stop(self) -> None:
        self._stopping = True
        await asyncio.get_running_loop().run_in_executor(None, self._publisher.close)
        self.connected = False

    # the publisher's events (paho thread) -> asyncio loop --------------------------------------

    def _hop(self, fn: Callable[[], None]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn)

    def on_connected(self) -> None:
        self._hop(self._connected)

    def on_disconnected(self, reason: str) -> None:
        self._hop(lambda: self._disconnected(reason))

    def on_acknowledged(self, mid: int, accepted: bool, reason: str) -> None:
        self._hop(lambda: self._acknowledged(mid, accepted, reason))

    def _connected(self) -> None:
        self.connected = True
        if self._events is not None:
            self._events.on_connected()

    def _disconnected(self, reason: str) -> None:
        was = self.connected
        self.connected = False
        if was and not self._stopping:
            logger.warning("lost the broker connection (%s); readings stay queued", reason)
        if self._events is not None:
            self._events.on_disconnected(reason)

    def _acknowledged(self, mid: int, accepted: bool, reason: str) -> None:
        if self._events is not None:
            self._events.on_acknowledged(mid, accepted, reason)

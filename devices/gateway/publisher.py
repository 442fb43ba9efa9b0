"""Drain the on-disk queue to the broker, oldest first; delete only what the broker acknowledged.

Queued messages of the same device (within the rows read at once) are sent as one MQTT message
(``rpm/<device_id>/readings``, payload per ``docs/contract/mqtt.md`` with ``gateway_id`` and
``device_id`` set) of at most ``batch_readings`` readings. At most ``window`` messages are in
flight; each PUBACK deletes the rows its message carried. While the broker is unreachable nothing
is handed to the MQTT client, so memory stays flat however long the outage; the queue on disk
grows instead and drains in order once the broker is back. Messages in flight when a connection
drops are re-sent by the client after it reconnects; after a restart every row still on disk is
sent again (the service absorbs a repeat: readings are identified by their natural key).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from devices.errors import GatewayError
from devices.gateway.queue import AsyncQueue
from devices.gateway.queue_store import QueuedMessage
from devices.gateway.transport import TransportEvents
from devices.message import MAX_PAYLOAD_BYTES

logger = logging.getLogger(__name__)

_PAYLOAD_BUDGET: Final = MAX_PAYLOAD_BYTES // 2
_REFUSED_BACKOFF: Final = 5.0


class MqttTransport(Protocol):
    @property
    def connected(self) -> bool: ...

    def start(self, events: TransportEvents) -> None: ...

    def publish(self, topic: str, payload: bytes) -> int: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class PublisherSettings:
    gateway_id: str
    topic_prefix: str = "rpm"
    window: int = 20
    batch_readings: int = 100
    idle_poll: float = 5.0
    """Seconds between queue checks when nothing signals new readings."""


def topic_for(prefix: str, device_id: str) -> str:
    return f"{prefix}/{device_id}/readings"


def group_messages(
    rows: Sequence[QueuedMessage], max_readings: int
) -> list[tuple[str, list[int], list[dict[str, Any]]]]:
    """Rows per device, in queue order, cut into MQTT messages of at most ``max_readings``
    readings (and well under the payload limit): (device_id, row ids, readings) per message.

    A device's messages come out in the order of its rows, so its readings stay in order.
    """
    groups: list[tuple[str, list[int], list[dict[str, Any]]]] = []
    open_group: dict[str, int] = {}
    sizes: dict[int, int] = {}
    for row in rows:
        row_size = len(json.dumps(row.readings))
        index = open_group.get(row.device_id)
        if (
            index is not None
            and len(groups[index][2]) + len(row.readings) <= max_readings
            and sizes[index] + row_size <= _PAYLOAD_BUDGET
        ):
            groups[index][1].append(row.id)
            groups[index][2].extend(row.readings)
            sizes[index] += row_size
        else:
            open_group[row.device_id] = len(groups)
            sizes[len(groups)] = row_size
            groups.append((row.device_id, [row.id], list(row.readings)))
    return groups


class Publisher(TransportEvents):
    def __init__(self, queue: AsyncQueue, transport: MqttTransport, settings: PublisherSettings) -> None:
        self._queue = queue
        self._transport = transport
        self._settings = settings
        self._inflight: dict[int, list[int]] = {}
        self._handed: set[int] = set()
        self._wake = asyncio.Event()
        self._connected = asyncio.Event()
        self._acked: list[int] = []
        self._ack_task: asyncio.Task[None] | None = None
        self._refused_until = 0.0
        self.messages_sent = 0

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    # transport events (on the loop) -------------------------------------------------------

    def on_connected(self) -> None:
        self._connected.set()
        self._wake.set()

    def on_disconnected(self, reason: str) -> None:
        self._connected.clear()

    def on_acknowledged(self, mid: int, accepted: bool, reason: str) -> None:
        ids = self._inflight.pop(mid, None)
        self._wake.set()
        if ids is None:
            return
        if not accepted:
            logger.error("broker refused a message (%s); it stays queued and is retried", reason)
            self._handed.difference_update(ids)
            self._refused_until = asyncio.get_running_loop().time() + _REFUSED_BACKOFF
            return
        self._acked.extend(ids)
        if self._ack_task is None or self._ack_task.done():
            self._ack_task = asyncio.create_task(self._delete_acked())

    async def _delete_acked(self) -> None:
        """Delete acknowledged rows, many per transaction: acks arriving during one commit
        wait for the next, so a fast broker costs a few fsyncs, not one per message."""
        while self._acked:
            ids, self._acked = self._acked, []
            try:
                await self._queue.ack(ids)
            except GatewayError as exc:
                logger.error("could not delete %d acknowledged row(s): %s", len(ids), exc)
                self._acked[:0] = ids
                await asyncio.sleep(1.0)
                continue
            self._handed.difference_update(ids)
            self._wake.set()

    # the drain loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Publish until cancelled; on cancellation wait briefly for outstanding acks."""
        self._transport.start(self)
        try:
            while True:
                await self._step()
        finally:
            await self._settle_acks()
            await self._transport.stop()

    async def _step(self) -> None:
        loop = asyncio.get_running_loop()
        await self._connected.wait()
        if loop.time() < self._refused_until:
            await asyncio.sleep(self._refused_until - loop.time())
            return
        room = self._settings.window - len(self._inflight)
        if room <= 0:
            await self._wait_for_wake()
            return
        rows = await self._fresh_rows(room * self._settings.batch_readings)
        if not rows:
            self._queue.changed.clear()
            rows = await self._fresh_rows(room * self._settings.batch_readings)
            if not rows:
                await self._wait_for_wake()
                return
        for device_id, ids, readings in group_messages(rows, self._settings.batch_readings)[:room]:
            if not self._transport.connected:
                return
            payload = {
                "gateway_id": self._settings.gateway_id,
                "device_id": device_id,
                "source": "ble",
                "readings": readings,
            }
            body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            mid = self._transport.publish(topic_for(self._settings.topic_prefix, device_id), body)
            self._inflight[mid] = ids
            self._handed.update(ids)
            self.messages_sent += 1

    async def _fresh_rows(self, limit: int) -> list[QueuedMessage]:
        """The oldest queued rows not yet handed to the transport (handed ones are in flight
        or acknowledged and about to be deleted)."""
        rows = await self._queue.peek(0, limit + len(self._handed))
        return [row for row in rows if row.id not in self._handed][:limit]

    async def _wait_for_wake(self) -> None:
        self._wake.clear()
        waiters = [
            asyncio.ensure_future(self._wake.wait()),
            asyncio.ensure_future(self._queue.changed.wait()),
        ]
        try:
            await asyncio.wait(
                waiters, timeout=self._settings.idle_poll, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _settle_acks(self) -> None:
        if self._ack_task is not None and not self._ack_task.done():
            await asyncio.wait({self._ack_task}, timeout=5)

    async def wait_drained(self) -> None:
        """Return once the queue is empty and nothing is in flight (for tests and shutdown)."""
        while True:
            stats = await self._queue.stats()
            if stats.messages == 0 and not self._inflight and not self._acked:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=0.2)
            except TimeoutError:
                pass

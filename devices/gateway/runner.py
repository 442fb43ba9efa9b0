"""Compose the home gateway: collector -> sink (clock correction) -> queue -> publisher.

:class:`Gateway` owns the pieces for one run; :meth:`Gateway.run` returns when cancelled, after
stopping the collector first (so values already received are on disk), then the publisher, then
closing the queue. The Bluetooth side comes in as a :class:`~devices.ble.collector_api.BleCentral`
(bleak over BlueZ on a home hub, bleak over bumble in tests and the demo).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Final

from devices.ble.collector_api import BleCentral
from devices.ble.collector_loop import Collector, CollectorSettings
from devices.ble.collector_session import SessionSettings
from devices.errors import DevicesError
from devices.gateway.clock import ClockPolicy
from devices.gateway.pipeline import GatewaySink
from devices.gateway.publisher import MqttTransport, Publisher, PublisherSettings
from devices.gateway.queue import AsyncQueue
from devices.gateway.queue_store import QueueStore, Synchronous
from devices.gateway.transport import BrokerTransport
from devices.mqtt.options import BrokerOptions

logger = logging.getLogger(__name__)

QUEUE_FILE: Final = "gateway-queue.sqlite3"
DEFAULT_MAX_QUEUE_BYTES: Final = 64 * 1024 * 1024


def utc_now() -> datetime:
    return datetime.now(UTC)


def local_zone() -> tzinfo:
    zone = datetime.now().astimezone().tzinfo
    return zone if zone is not None else UTC


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    gateway_id: str
    data_dir: Path
    broker: BrokerOptions
    """Built with :func:`devices.mqtt.options.broker_options`."""
    tz: tzinfo = field(default_factory=local_zone)
    topic_prefix: str = "rpm"
    allow: frozenset[str] = frozenset()
    accept_any: bool = False
    device_ids: Mapping[str, str] = field(default_factory=dict)
    max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES
    synchronous: Synchronous = "FULL"
    continuous_interval: timedelta = timedelta(seconds=60)
    settle_time: float = 1.0
    racp_timeout: float = 30.0
    record_poll_interval: float = 900.0
    backoff_initial: float = 1.0
    backoff_max: float = 300.0
    publish_window: int = 20
    adapter: str | None = None
    """Bluetooth adapter (BlueZ: ``hci0``); None for the default."""

    @property
    def queue_path(self) -> Path:
        return self.data_dir / QUEUE_FILE


class Gateway:
    """One run of the gateway. Without a Bluetooth central it only drains the queue."""

    def __init__(
        self,
        settings: GatewaySettings,
        central: BleCentral | None,
        *,
        transport: MqttTransport | None = None,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
        store = QueueStore(
            settings.queue_path, max_bytes=settings.max_queue_bytes, synchronous=settings.synchronous
        )
        self.queue = AsyncQueue(store)
        self.sink = GatewaySink(
            self.queue, ClockPolicy(settings.tz), now=now, device_ids=settings.device_ids
        )
        session = SessionSettings(
            tz=settings.tz,
            continuous_interval=settings.continuous_interval,
            racp_timeout=settings.racp_timeout,
            settle_time=settings.settle_time,
            record_poll_interval=settings.record_poll_interval,
        )
        self.collector = None if central is None else Collector(
            central,
            self.sink,
            CollectorSettings(
                session=session,
                allow=settings.allow,
                accept_any=settings.accept_any,
                backoff_initial=settings.backoff_initial,
                backoff_max=settings.backoff_max,
            ),
            now=now,
        )
        self.publisher = Publisher(
            self.queue,
            transport or BrokerTransport(settings.broker, max_inflight=settings.publish_window),
            PublisherSettings(
                gateway_id=settings.gateway_id,
                topic_prefix=settings.topic_prefix,
                window=settings.publish_window,
            ),
        )

    async def run(self) -> None:
        stats = await self.queue.stats()
        logger.info(
            "gateway %s starting: %d reading(s) queued from before",
            self.settings.gateway_id, stats.readings,
        )
        tasks = [asyncio.create_task(self.publisher.run(), name="gateway-publisher")]
        if self.collector is not None:
            tasks.insert(0, asyncio.create_task(self.collector.run(), name="gateway-collector"))
        failure: BaseException | None = None
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            failure = next((t.exception() for t in done if t.exception() is not None), None)
        finally:
            for task in tasks:  # the collector first: what it received is on disk before we stop
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, DevicesError):
                    await task
            stats = await self.queue.stats()
            await self.queue.close()
            logger.info(
                "gateway stopped: %d reading(s) still queued, %d published, %d dropped",
                stats.readings, stats.published, stats.dropped,
            )
        if failure is not None:
            raise failure

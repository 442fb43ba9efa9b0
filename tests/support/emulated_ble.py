"""Helpers for tests that run emulated devices on a virtual radio (no pytest-asyncio: each test
drives its own event loop through :func:`run`)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, TypeVar

from devices.ble.collector import BleakCentral
from devices.ble.collector_loop import Collector, CollectorSettings
from devices.ble.collector_session import SessionSettings
from devices.ble.emulated.bleak_backend import BumbleAdapter
from devices.ble.emulated.peripheral import EmulatedPeripheral
from devices.ble.emulated.radio import VirtualRadio
from devices.gateway.clock import ClockPolicy
from devices.gateway.pipeline import GatewaySink
from devices.gateway.queue import AsyncQueue
from devices.gateway.queue_store import QueueStore

T = TypeVar("T")
GATEWAY_ADDRESS = "C0:00:00:00:00:01"


def run(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    """Run one scenario on a fresh event loop, failing (not hanging) after ``timeout``."""

    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


def uuid16(short: int) -> str:
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"


def utc_now() -> datetime:
    return datetime.now(UTC)


async def until(predicate: Callable[[], object], *, timeout: float = 10.0, what: str = "") -> None:
    """Poll ``predicate`` (sync or async) until truthy; fail with ``what`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def on_air(
    *peripherals: EmulatedPeripheral, adapter_on: bool = True
) -> AsyncIterator[BumbleAdapter]:
    """A virtual radio with the gateway's adapter and ``peripherals`` advertising on it."""
    radio = VirtualRadio()
    adapter = BumbleAdapter(radio.create_device("gateway", GATEWAY_ADDRESS))
    if adapter_on:
        await adapter.power_on()
    for peripheral in peripherals:
        await peripheral.start(radio)
    try:
        yield adapter
    finally:
        for peripheral in peripherals:
            await peripheral.stop()


@dataclass
class Harness:
    adapter: BumbleAdapter
    queue: AsyncQueue
    sink: GatewaySink
    collector: Collector

    async def readings(self) -> list[dict[str, Any]]:
        """Every queued reading, oldest first, with its device id added."""
        rows = await self.queue.peek(0, 100_000)
        return [{"device_id": row.device_id, **r} for row in rows for r in row.readings]

    async def messages(self) -> list[list[dict[str, Any]]]:
        return [row.readings for row in await self.queue.peek(0, 100_000)]


@contextlib.asynccontextmanager
async def collecting(
    tmp_path: Path,
    *peripherals: EmulatedPeripheral,
    allow: frozenset[str] | None = None,
    tz: tzinfo = UTC,
    continuous_interval: timedelta = timedelta(0),
    racp_timeout: float = 2.0,
    record_poll_interval: float = 3600.0,
    max_bytes: int = 16 * 1024 * 1024,
    adapter_on: bool = True,
) -> AsyncIterator[Harness]:
    """The production collector and gateway sink (real SQLite queue) over emulated devices."""
    async with on_air(*peripherals, adapter_on=adapter_on) as adapter:
        queue = AsyncQueue(QueueStore(tmp_path / "queue.sqlite3", max_bytes=max_bytes))
        sink = GatewaySink(queue, ClockPolicy(tz), now=utc_now)
        central = BleakCentral(
            scanner_backend=adapter.scanner_backend, client_backend=adapter.client_backend
        )
        session = SessionSettings(
            tz=tz,
            continuous_interval=continuous_interval,
            racp_timeout=racp_timeout,
            settle_time=0.05,
            record_poll_interval=record_poll_interval,
        )
        collector = Collector(
            central,
            sink,
            CollectorSettings(
                session=session,
                allow=allow if allow is not None else frozenset(p.address for p in peripherals),
                backoff_initial=0.05,
                backoff_max=0.2,
                reconnect_delay=0.05,
            ),
            now=utc_now,
        )
        task = asyncio.create_task(collector.run())
        try:
            yield Harness(adapter, queue, sink, collector)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await queue.close()

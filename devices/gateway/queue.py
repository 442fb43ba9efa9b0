"""Asyncio face of the on-disk queue: every call runs on one dedicated writer thread.

SQLite commits with ``synchronous=FULL`` wait for fsync; doing that on the event loop would stall
Bluetooth callbacks and MQTT acknowledgements, so the store lives on its own thread and the
loop awaits the result. One thread means one writer and no locking.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from typing import TypeVar

from devices.ble.collector_api import RecordCursor
from devices.gateway.queue_store import EnqueueResult, Entry, QueuedMessage, QueueStats, QueueStore

_T = TypeVar("_T")


class AsyncQueue:
    def __init__(self, store: QueueStore) -> None:
        self._store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gateway-queue")
        self.changed = asyncio.Event()
        """Set whenever messages are queued; the publisher clears it when it has caught up."""

    @property
    def store(self) -> QueueStore:
        return self._store

    async def _run(self, fn: Callable[[], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def enqueue(
        self, entries: Sequence[Entry], cursor: RecordCursor | None, *, now: datetime
    ) -> EnqueueResult:
        result = await self._run(partial(self._store.enqueue, entries, cursor, now=now))
        if result.queued:
            self.changed.set()
        return result

    async def ack(self, ids: Sequence[int]) -> int:
        return await self._run(partial(self._store.ack, list(ids)))

    async def peek(self, after_id: int, limit: int) -> list[QueuedMessage]:
        return await self._run(partial(self._store.peek, after_id, limit))

    async def last_sequence(self, address: str, stream: str) -> int | None:
        return await self._run(partial(self._store.last_sequence, address, stream))

    async def set_battery(self, address: str, percent: int, at: datetime) -> None:
        await self._run(partial(self._store.set_battery, address, percent, at))

    async def stats(self) -> QueueStats:
        return await self._run(self._store.stats)

    async def close(self) -> None:
        await self._run(self._store.close)
        self._executor.shutdown(wait=True)

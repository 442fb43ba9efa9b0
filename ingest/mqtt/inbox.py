"""The bounded hand-off between the MQTT callback and the writer thread.

Bounded in messages and in payload bytes. When it is full, ``put`` blocks the network thread:
the broker then stops sending (TCP back-pressure) instead of anything being dropped. With a
broker that honours the in-flight window (MQTT 5 Receive Maximum, Mosquitto's
``max_inflight_messages``) and a capacity at least that window, ``put`` never has to wait.

``put`` runs once per message on the network thread, so it wakes the writer only when the writer
asked for it: for the first item of a batch, or once enough items are queued to fill the batch.
While gathering, the writer otherwise looks again every ``idle_s`` (a wake-up per message cost a
thread switch and a hand-over of the interpreter lock per message).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Final, Generic, TypeVar

T = TypeVar("T")
_NOBODY: Final = 1 << 62  # no wake-up wanted: the writer is not waiting


class Inbox(Generic[T]):
    def __init__(self, *, max_items: int, max_bytes: int) -> None:
        if max_items < 1 or max_bytes < 1:
            raise ValueError("an inbox needs room for at least one message")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._items: deque[tuple[T, int]] = deque()
        self._bytes = 0
        self._closed = False
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self.waits = 0  # how often put had to wait for room (back-pressure engaged)
        self._arrived = 0  # items ever put (tells the writer whether anything came while it slept)
        self._wake_at = _NOBODY  # queue length at which put wakes the writer
        self._producers_waiting = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item: T, size: int) -> bool:
        """Append ``item``, waiting for room; False (item not taken) once the inbox is closed.

        A single item larger than ``max_bytes`` is accepted when the inbox is empty, so an
        oversized message cannot wedge the consumer.
        """
        with self._lock:
            items = self._items
            if items and (len(items) >= self.max_items or self._bytes + size > self.max_bytes):
                self.waits += 1
                self._producers_waiting += 1
                try:
                    while not self._closed and items and (
                        len(items) >= self.max_items or self._bytes + size > self.max_bytes
                    ):
                        self._not_full.wait(0.5)
                finally:
                    self._producers_waiting -= 1
            if self._closed:
                return False
            items.append((item, size))
            self._bytes += size
            self._arrived += 1
            if len(items) >= self._wake_at:
                self._not_empty.notify()
            return True

    def close(self) -> None:
        """Refuse further items and wake everyone; items already queued stay for ``drain``."""
        with self._lock:
            self._closed = True
            self._wake_at = _NOBODY
            self._not_empty.notify_all()
            self._not_full.notify_all()

    def take_batch(
        self,
        *,
        max_items: int,
        max_wait_s: float,
        first_timeout_s: float,
        idle_s: float,
        window: int,
        held: Callable[[], int] = lambda: 0,
        max_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> list[T]:
        """Wait up to ``first_timeout_s`` for a first item, then gather a batch.

        The batch is handed over when it holds ``max_items`` or ``max_bytes`` of payload (the
        inbox's own bound by default), when ``max_wait_s`` passed since its first item, when it
        and the ``held()`` messages taken earlier and not yet acknowledged fill ``window`` (the
        broker's in-flight window: nothing more can arrive before an acknowledgement), when
        nothing arrived for ``idle_s`` (the broker is
        waiting for us), or when the inbox is closed. Empty list: nothing came, or closed.
        """
        batch: list[T] = []
        size_cap = self.max_bytes if max_bytes is None else max_bytes
        taken = 0  # payload bytes in the batch
        with self._lock:
            items = self._items
            deadline = clock() + first_timeout_s
            while not items:
                if self._closed:
                    return batch
                remaining = deadline - clock()
                if remaining <= 0:
                    return batch
                self._sleep(1, remaining)
            deadline = clock() + max_wait_s
            while True:
                while items and len(batch) < max_items and taken < size_cap:
                    item, size = items.popleft()
                    self._bytes -= size
                    taken += size
                    batch.append(item)
                if self._producers_waiting:
                    self._not_full.notify_all()
                room = window - held()  # what the broker may have in flight for this batch
                full = len(batch) >= max_items or taken >= size_cap
                if full or self._closed or len(batch) >= room:
                    break
                remaining = deadline - clock()
                if remaining <= 0:
                    break
                arrived = self._arrived
                self._sleep(min(max_items, max(room, 1)) - len(batch), min(remaining, idle_s))
                if self._arrived == arrived:
                    break  # idle: nothing arrived for idle_s
        return batch

    def _sleep(self, wake_at: int, timeout: float) -> None:
        """Wait (lock held) until ``wake_at`` items are queued, the inbox closes, or ``timeout``."""
        self._wake_at = wake_at
        try:
            self._not_empty.wait(timeout)
        finally:
            self._wake_at = _NOBODY

    def drain(self) -> list[T]:
        """Remove and return everything queued (used at stop, to count what is left unacked)."""
        with self._lock:
            items = [item for item, _ in self._items]
            self._items.clear()
            self._bytes = 0
            self._not_full.notify_all()
            return items

"""The bounded hand-off between the MQTT callback and the writer thread.

Bounded in messages and in payload bytes. When it is full, ``put`` blocks the network thread:
the broker then stops sending (TCP back-pressure) instead of anything being dropped. With a
broker that honours the in-flight window (MQTT 5 Receive Maximum, Mosquitto's
``max_inflight_messages``) and a capacity at least that window, ``put`` never has to wait.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


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
            waited = False
            while not self._closed and self._items and (
                len(self._items) >= self.max_items or self._bytes + size > self.max_bytes
            ):
                waited = True
                self._not_full.wait(0.5)
            if waited:
                self.waits += 1
            if self._closed:
                return False
            self._items.append((item, size))
            self._bytes += size
            self._not_empty.notify()
            return True

    def close(self) -> None:
        """Refuse further items and wake everyone; items already queued stay for ``drain``."""
        with self._lock:
            self._closed = True
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
        clock: Callable[[], float] = time.monotonic,
    ) -> list[T]:
        """Wait up to ``first_timeout_s`` for a first item, then gather a batch.

        The batch is handed over when it holds ``max_items``, when ``max_wait_s`` passed since its
        first item, when it holds ``window`` items (the broker's in-flight window: nothing more
        can arrive before an acknowledgement), when nothing arrived for ``idle_s`` (the broker is
        waiting for us), or when the inbox is closed. Empty list: nothing came, or closed.
        """
        batch: list[T] = []
        with self._lock:
            deadline = clock() + first_timeout_s
            while not self._items:
                if self._closed:
                    return batch
                remaining = deadline - clock()
                if remaining <= 0:
                    return batch
                self._not_empty.wait(remaining)
            deadline = clock() + max_wait_s
            while len(batch) < max_items:
                if self._items:
                    item, size = self._items.popleft()
                    self._bytes -= size
                    batch.append(item)
                    continue
                self._not_full.notify_all()
                if self._closed or len(batch) >= window:
                    break
                remaining = deadline - clock()
                if remaining <= 0:
                    break
                if not self._not_empty.wait(min(remaining, idle_s)) and not self._items:
                    break  # idle: nothing arrived for idle_s
            self._not_full.notify_all()
        return batch

    def drain(self) -> list[T]:
        """Remove and return everything queued (used at stop, to count what is left unacked)."""
        with self._lock:
            items = [item for item, _ in self._items]
            self._items.clear()
            self._bytes = 0
            self._not_full.notify_all()
            return items

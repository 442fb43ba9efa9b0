"""Fan-out of committed alert events to live subscribers (SSE clients, the webhook worker).

One thread per process LISTENs on the database channel that event writers NOTIFY at commit, and
also polls the event table every few seconds, so an event written by any process (HTTP ingest,
MQTT consumer, scheduler, another replica) reaches every subscriber even if a notification was
missed. The event table is the source of truth: a subscriber that falls behind is dropped and
resumes from the table with its last event id.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg

from ingest.alerts.events import NOTIFY_CHANNEL, events_after, last_event_id
from ingest.background import BackgroundThread

logger = logging.getLogger(__name__)

Event = dict[str, Any]
Listener = Callable[[Sequence[Event]], None]

QUEUE_LIMIT: Final = 10_000
PAGE: Final = 1000


@dataclass(eq=False)
class Subscription:
    """A subscriber living on an asyncio loop; batches of events arrive on its queue."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Sequence[Event] | None] = field(default_factory=asyncio.Queue)
    pending: int = 0
    closed: bool = False

    def _push(self, events: Sequence[Event] | None) -> None:
        if self.closed:
            return
        if events is None:
            self.closed = True
            self.queue.put_nowait(None)
            return
        self.pending += len(events)
        if self.pending > QUEUE_LIMIT:
            # Too slow: end the stream; the client resumes from the table with Last-Event-ID.
            logger.info("dropping a slow alert stream subscriber")
            self.closed = True
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(events)

    async def get(self) -> Sequence[Event] | None:
        events = await self.queue.get()
        if events is not None:
            self.pending -= len(events)
        return events


class Broadcaster:
    def __init__(
        self,
        conninfo: str,
        *,
        poll_s: float = 2.0,
        listeners: Sequence[Listener] = (),
    ) -> None:
        self.conninfo = conninfo
        self.poll_s = poll_s
        self._listeners = list(listeners)
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()
        self._background = BackgroundThread("alert-events", self._run)
        self.last_id = 0
        self.ready = threading.Event()

    # ----------------------------------------------------------------- subscribers

    def subscribe(self, loop: asyncio.AbstractEventLoop) -> Subscription:
        sub = Subscription(loop)
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subs)

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _dispatch(self, events: Sequence[Event] | None) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            try:
                sub.loop.call_soon_threadsafe(sub._push, events)  # noqa: SLF001
            except RuntimeError:  # its loop is closed
                self.unsubscribe(sub)
        if events:
            for listener in self._listeners:
                try:
                    listener(events)
                except Exception:
                    logger.exception("alert event listener failed")

    # ----------------------------------------------------------------- thread

    def start(self) -> None:
        self._background.start()

    def stop(self) -> None:
        self._background.stop()
        self._dispatch(None)  # end every open stream

    def _run(self) -> None:
        backoff = 0.5
        first = True
        while not self._background.stopping.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    if first:
                        self.last_id = last_event_id(conn)
                        first = False
                    self.ready.set()
                    backoff = 0.5
                    self._listen(conn)
            except psycopg.Error as exc:
                if self._background.stopping.is_set():
                    break
                logger.warning(
                    "alert event listener lost the database (%s); retrying in %.1fs",
                    type(exc).__name__,
                    backoff,
                )
                self._background.stopping.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def _listen(self, conn: psycopg.Connection[Any]) -> None:
        next_poll = 0.0
        while not self._background.stopping.is_set():
            notified = False
            for _ in conn.notifies(timeout=0.25, stop_after=1):
                notified = True
            now = time.monotonic()
            if notified or now >= next_poll:
                self._catch_up(conn)
                next_poll = now + self.poll_s

    def _catch_up(self, conn: psycopg.Connection[Any]) -> None:
        while True:
            events = events_after(conn, self.last_id, limit=PAGE)
            if not events:
                return
            self.last_id = events[-1]["id"]
            self._dispatch(events)
            if len(events) < PAGE:
                return

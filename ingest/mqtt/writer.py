"""The writer: takes batches from the inbox, stores them, then acknowledges them.

Flush at N messages, N bytes or T ms (whichever first; also as soon as nothing more can arrive).
One thread gathers the next batch and parses it (``BatchStore.prepare``: no database) while the
storing threads store the batches before it, so parsing overlaps the database's work instead of
waiting for it (bench/ingest_mqtt.py gateway mode); a queue of up to two parsed batches sits
between them. With ``lanes`` storing threads (``RPM_MQTT_WRITERS``, 2 by default), that many
batches are stored at once, each in its own transaction on its own connection: one transaction
keeps one PostgreSQL backend busy at most, and a hub's backlog is bound by it (docs/scaling.md).
Transactions may commit out of order (as they do across ``serve --workers``), but acknowledgements
go out in the order the batches were taken, as MQTT asks of PUBACKs: a batch that committed waits
for the ones before it.

A batch is acknowledged only after its transaction committed; on a storage failure it is kept and
retried with backoff, nothing acknowledged, and the inbox fills until the broker stops sending. At
stop the batches in hand are finished (if the database allows within the grace period) and
acknowledged; once one is given up, none after it is acknowledged either; whatever is still queued
or parsed is left unacknowledged for the broker to deliver again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ingest.metrics import Metrics
from ingest.mqtt.delivery import Delivery
from ingest.mqtt.inbox import Inbox
from ingest.mqtt.storage import BatchStore, Failure, classify
from ingest.pipeline import Prepared

logger = logging.getLogger(__name__)


class Acknowledger(Protocol):
    def ack(self, deliveries: Sequence[Delivery]) -> int: ...


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    max_messages: int = 500
    max_wait_s: float = 0.05
    window: int | None = 1000  # the broker's in-flight window, when known
    max_bytes: int = 512 * 1024  # payload bytes in a batch
    idle_s: float = 0.005
    retry_min_s: float = 0.2
    retry_max_s: float = 10.0
    lanes: int = 2  # batches stored at once, each in its own transaction


@dataclass(slots=True)
class _Lane:
    """One storing thread's own state: its retry delay."""

    delay: float


class BatchWriter:
    def __init__(
        self,
        *,
        inbox: Inbox[Delivery],
        store: BatchStore,
        acker: Acknowledger,
        metrics: Metrics,
        policy: BatchPolicy,
    ) -> None:
        self._inbox = inbox
        self._store = store
        self._acker = acker
        self._metrics = metrics
        self.policy = policy
        self._stopping = threading.Event()
        self._abandon = threading.Event()
        if policy.lanes < 1:
            raise ValueError("a writer needs at least one storing thread")
        self._threads: list[threading.Thread] = []
        self._parser: threading.Thread | None = None
        # the hand-off: parsed batches waiting for a storing thread, numbered in the order they
        # were taken (two: the parser keeps ahead when a batch takes it longer than one being stored)
        self._ready: queue.Queue[tuple[int, list[Delivery], Prepared | None]] = queue.Queue(maxsize=2)
        self._lock = threading.Lock()
        self._turn_changed = threading.Condition(self._lock)
        self._turn = 0  # number of the next batch to acknowledge
        self._given_up = False  # a batch was given up at stop: none after it is acknowledged
        self._in_hand = 0  # messages taken by the storing threads, not yet acknowledged
        self._parsing = 0  # messages taken by the parsing thread, not yet handed over
        self._waiting = 0  # messages in the hand-off
        self._failing_since: float | None = None
        self.committed_batches = 0

    # --- life cycle
    def start(self) -> None:
        self._parser = threading.Thread(target=self._run_parser, name="mqtt-parser", daemon=True)
        lanes = self.policy.lanes
        names = ["mqtt-writer"] if lanes == 1 else [f"mqtt-writer-{i}" for i in range(lanes)]
        self._threads = [threading.Thread(target=self._run, name=n, daemon=True) for n in names]
        self._parser.start()
        for thread in self._threads:
            thread.start()

    def stop(self, grace_s: float) -> None:
        """Finish the batches in hand within ``grace_s`` (else give them up unacknowledged)."""
        self._stopping.set()
        self._inbox.close()
        if not self._threads:
            return
        deadline = time.monotonic() + grace_s
        if self._parser is not None:
            self._parser.join(grace_s)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in self._threads):
            logger.warning("MQTT writer still retrying at stop: giving up the batches in hand unacknowledged")
            self._abandon.set()
            deadline = time.monotonic() + self._store.connect_timeout_s + 5
            for thread in self._threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            if any(t.is_alive() for t in self._threads):
                logger.error("MQTT writer did not stop; its batches stay unacknowledged")

    @property
    def unacked(self) -> int:
        """Messages received and not yet acknowledged (queued, being parsed, handed over and
        in hand)."""
        with self._lock:
            return len(self._inbox) + self._held()

    def _held(self) -> int:
        """Messages out of the inbox and not yet acknowledged (read without the lock: take_batch
        asks while holding the inbox's)."""
        return self._parsing + self._waiting + self._in_hand

    def status(self) -> tuple[bool, str]:
        threads, parser = self._threads, self._parser
        if not threads or not all(t.is_alive() for t in threads) or parser is None or not parser.is_alive():
            return False, "writer not running"
        failing = self._failing_since
        if failing is not None:
            return False, f"storage failing for {time.monotonic() - failing:.0f} s, retrying"
        return True, "ok"

    # --- the threads
    def _run(self) -> None:
        lane = _Lane(self.policy.retry_min_s)
        self._guarded(lambda: self._loop(lane))

    def _run_parser(self) -> None:
        self._guarded(self._parse_loop)

    @staticmethod
    def _guarded(loop: Callable[[], None]) -> None:
        try:
            loop()
        except BaseException:
            # A defect, not a storage problem: nothing more is acknowledged, /readyz says so.
            logger.critical("MQTT writer stopped by an unexpected error", exc_info=True)
            raise

    def _parse_loop(self) -> None:
        """Gather a batch, parse it, hand it over (waiting while two wait for the writer)."""
        p = self.policy
        taken = 0  # batches handed over: the number of the next one
        while not self._stopping.is_set():
            batch = self._inbox.take_batch(
                max_items=p.max_messages,
                max_wait_s=p.max_wait_s,
                first_timeout_s=0.25,
                idle_s=p.idle_s,
                window=p.window or p.max_messages,
                held=self._held if p.window else lambda: 0,
                max_bytes=p.max_bytes,
            )
            if not batch:
                continue
            with self._lock:
                self._parsing = len(batch)
            try:
                prepared: Prepared | None = self._store.prepare(batch)
            except Exception:  # a defect on this input: the writer stores it the ordinary way
                logger.warning("parsing a batch failed: the writer stores it unparsed", exc_info=True)
                prepared = None
            with self._lock:  # counted as handed over while it waits for room
                self._parsing = 0
                self._waiting += len(batch)
            while not self._stopping.is_set():
                try:
                    self._ready.put((taken, batch, prepared), timeout=0.25)
                    taken += 1
                    break
                except queue.Full:
                    continue
            else:  # stopping: the batch stays unacknowledged, the broker delivers it again
                with self._lock:
                    self._waiting -= len(batch)
        logger.debug("MQTT parser stopped")

    def _loop(self, lane: _Lane) -> None:
        while not self._stopping.is_set():
            try:
                number, batch, prepared = self._ready.get(timeout=0.25)
            except queue.Empty:
                continue
            with self._lock:
                self._waiting -= len(batch)
                self._in_hand += len(batch)
            committed = False
            try:
                committed = self._commit(batch, prepared, lane)
            finally:
                self._in_turn(number, batch, committed)
        logger.debug("MQTT writer stopped")

    def _in_turn(self, number: int, batch: Sequence[Delivery], committed: bool) -> None:
        """Once the batches taken before this one are through: acknowledge it (if it committed and
        none before it was given up), then let the next one go."""
        with self._turn_changed:
            while self._turn != number:
                self._turn_changed.wait()
            if not committed:
                self._given_up = True
            acknowledge = committed and not self._given_up
            # Before the acknowledgements go out: the broker refills the window at once, and the
            # network thread may queue the new messages before this thread runs again (unacked
            # would count both, beyond the in-flight window).
            self._in_hand -= len(batch)
        try:
            if acknowledge:
                self._acknowledge(batch)  # no other batch's acknowledgements until the turn moves
        finally:
            with self._turn_changed:
                self._turn += 1
                self._turn_changed.notify_all()

    def _acknowledge(self, batch: Sequence[Delivery]) -> None:
        sent = self._acker.ack(batch)
        self._metrics.mqtt_acked.inc(sent)
        if sent < len(batch):
            self._metrics.mqtt_ack_skipped.inc(len(batch) - sent)
            logger.info(
                "%d committed messages arrived on a lost connection: not acknowledged, the broker"
                " redelivers them",
                len(batch) - sent,
            )

    def _commit(self, batch: Sequence[Delivery], prepared: Prepared | None, lane: _Lane) -> bool:
        """Store the batch; True once committed, False if given up at stop (nothing acked)."""
        while True:
            try:
                self._store.store(batch, prepared)
            except Exception as exc:  # classified below: retried or isolated, never swallowed
                if classify(exc) is Failure.RETRY:
                    if not self._back_off(exc, lane):
                        return False
                    continue
                logger.warning(
                    "batch of %d messages refused by the store (%s): storing one by one",
                    len(batch),
                    type(exc).__name__,
                )
                return self._isolate(batch, lane)
            self._recovered(lane)
            with self._lock:
                self.committed_batches += 1
            return True

    def _isolate(self, batch: Sequence[Delivery], lane: _Lane) -> bool:
        i = 0
        while i < len(batch):
            try:
                self._store.store(batch[i : i + 1])
            except Exception as exc:  # classified: retried, or this message is dead-lettered
                if classify(exc) is Failure.RETRY:
                    if not self._back_off(exc, lane):
                        return False
                    continue
                try:
                    self._store.refuse(batch[i], exc)
                except Exception as refuse_exc:  # the dead-letter insert itself failed: retry
                    if not self._back_off(refuse_exc, lane):
                        return False
                    continue
                logger.warning("message %d of the batch dead-lettered: %s", i, type(exc).__name__)
            self._recovered(lane)
            i += 1
        return True

    def _back_off(self, exc: BaseException, lane: _Lane) -> bool:
        """Wait before retrying after a storage failure; False when stop gave up on the batch."""
        with self._lock:
            if self._failing_since is None:
                self._failing_since = time.monotonic()
        self._metrics.storage_errors.labels("mqtt").inc()
        level = logging.WARNING if classify(exc) is Failure.RETRY else logging.ERROR
        delay = lane.delay
        logger.log(
            level,
            "storage unavailable (%s): batch kept unacknowledged, retrying in %.1f s",
            type(exc).__name__,
            delay,
        )
        lane.delay = min(delay * 2, self.policy.retry_max_s)
        return not self._abandon.wait(delay)

    def _recovered(self, lane: _Lane) -> None:
        lane.delay = self.policy.retry_min_s
        with self._lock:
            failing, self._failing_since = self._failing_since, None
        if failing is not None:
            logger.info("storage back after %.1f s; resuming", time.monotonic() - failing)

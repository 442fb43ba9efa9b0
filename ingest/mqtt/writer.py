"""The single writer: takes batches from the inbox, stores them, then acknowledges them.

Flush at N messages, N bytes or T ms (whichever first; also as soon as nothing more can arrive).
Two threads: one gathers the next batch and parses it (``BatchStore.prepare``: no database) while
the other stores the batch before it, so parsing overlaps the database's work instead of waiting
for it (bench/ingest_mqtt.py gateway mode); a queue of up to two parsed batches between them keeps
the order. A batch is acknowledged only after its transaction committed; on a storage failure it
is kept and retried with backoff, nothing acknowledged, and the inbox fills until the broker stops
sending. At stop the batch in hand is finished (if the database allows within the grace period)
and acknowledged; whatever is still queued or parsed is left unacknowledged for the broker to
deliver again.
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
        self._thread: threading.Thread | None = None
        self._parser: threading.Thread | None = None
        # the hand-off: parsed batches waiting for the writer (two: the parser keeps ahead when a
        # batch takes it longer than the one the writer is storing)
        self._ready: queue.Queue[tuple[list[Delivery], Prepared | None]] = queue.Queue(maxsize=2)
        self._lock = threading.Lock()
        self._in_hand = 0  # messages taken by the writer thread, not yet acknowledged
        self._parsing = 0  # messages taken by the parsing thread, not yet handed over
        self._waiting = 0  # messages in the hand-off
        self._failing_since: float | None = None
        self._delay = policy.retry_min_s
        self.committed_batches = 0

    # --- life cycle
    def start(self) -> None:
        self._parser = threading.Thread(target=self._run_parser, name="mqtt-parser", daemon=True)
        self._thread = threading.Thread(target=self._run, name="mqtt-writer", daemon=True)
        self._parser.start()
        self._thread.start()

    def stop(self, grace_s: float) -> None:
        """Finish the batch in hand within ``grace_s`` (else give it up unacknowledged)."""
        self._stopping.set()
        self._inbox.close()
        thread = self._thread
        if thread is None:
            return
        started = time.monotonic()
        if self._parser is not None:
            self._parser.join(grace_s)
        thread.join(max(0.0, grace_s - (time.monotonic() - started)))
        if thread.is_alive():
            logger.warning("MQTT writer still retrying at stop: giving up the batch in hand unacknowledged")
            self._abandon.set()
            thread.join(self._store.connect_timeout_s + 5)
            if thread.is_alive():
                logger.error("MQTT writer did not stop; its batch stays unacknowledged")

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
        thread, parser = self._thread, self._parser
        if thread is None or not thread.is_alive() or parser is None or not parser.is_alive():
            return False, "writer not running"
        failing = self._failing_since
        if failing is not None:
            return False, f"storage failing for {time.monotonic() - failing:.0f} s, retrying"
        return True, "ok"

    # --- the threads
    def _run(self) -> None:
        self._guarded(self._loop)

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
                    self._ready.put((batch, prepared), timeout=0.25)
                    break
                except queue.Full:
                    continue
            else:  # stopping: the batch stays unacknowledged, the broker delivers it again
                with self._lock:
                    self._waiting -= len(batch)
        logger.debug("MQTT parser stopped")

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                batch, prepared = self._ready.get(timeout=0.25)
            except queue.Empty:
                continue
            with self._lock:
                self._waiting -= len(batch)
                self._in_hand = len(batch)
            try:
                committed = self._commit(batch, prepared)
            finally:
                # Before the acknowledgements go out: the broker refills the window at once, and
                # the network thread may queue the new messages before this thread runs again
                # (unacked would count both, beyond the in-flight window).
                with self._lock:
                    self._in_hand = 0
            if committed:
                self._acknowledge(batch)
        logger.debug("MQTT writer stopped")

    def _acknowledge(self, batch: Sequence[Delivery]) -> None:
        sent = self._acker.ack(batch)
        self._metrics.mqtt_acked.inc(sent)
        if sent < len(batch):
            self._metrics.mqtt_ack_skipped.inc(len(batch) - sent)
            logger.info(
                "%d committed messages arrived on a lost connection: not acknowledged, the broker"
                " redelivers them", len(batch) - sent,
            )

    def _commit(self, batch: Sequence[Delivery], prepared: Prepared | None = None) -> bool:
        """Store the batch; True once committed, False if given up at stop (nothing acked)."""
        while True:
            try:
                self._store.store(batch, prepared)
            except Exception as exc:  # classified below: retried or isolated, never swallowed
                if classify(exc) is Failure.RETRY:
                    if not self._back_off(exc):
                        return False
                    continue
                logger.warning(
                    "batch of %d messages refused by the store (%s): storing one by one",
                    len(batch), type(exc).__name__,
                )
                return self._isolate(batch)
            self._recovered()
            self.committed_batches += 1
            return True

    def _isolate(self, batch: Sequence[Delivery]) -> bool:
        i = 0
        while i < len(batch):
            try:
                self._store.store(batch[i : i + 1])
            except Exception as exc:  # classified: retried, or this message is dead-lettered
                if classify(exc) is Failure.RETRY:
                    if not self._back_off(exc):
                        return False
                    continue
                try:
                    self._store.refuse(batch[i], exc)
                except Exception as refuse_exc:  # the dead-letter insert itself failed: retry
                    if not self._back_off(refuse_exc):
                        return False
                    continue
                logger.warning("message %d of the batch dead-lettered: %s", i, type(exc).__name__)
            self._recovered()
            i += 1
        return True

    def _back_off(self, exc: BaseException) -> bool:
        """Wait before retrying after a storage failure; False when stop gave up on the batch."""
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
            self._delay = self.policy.retry_min_s
        else:
            self._delay = min(self._delay * 2, self.policy.retry_max_s)
        self._metrics.storage_errors.labels("mqtt").inc()
        level = logging.WARNING if classify(exc) is Failure.RETRY else logging.ERROR
        logger.log(
            level, "storage unavailable (%s): batch kept unacknowledged, retrying in %.1f s",
            type(exc).__name__, self._delay,
        )
        return not self._abandon.wait(self._delay)

    def _recovered(self) -> None:
        if self._failing_since is not None:
            logger.info(
                "storage back after %.1f s; resuming", time.monotonic() - self._failing_since
            )
            self._failing_since = None

"""The single writer: takes batches from the inbox, stores them, then acknowledges them.

Flush at N messages or T ms (whichever first; also as soon as nothing more can arrive). A batch
is acknowledged only after its transaction committed; on a storage failure it is kept and retried
with backoff, nothing acknowledged, and the inbox fills until the broker stops sending. At stop
the batch in hand is finished (if the database allows within the grace period) and acknowledged;
whatever is still queued is left unacknowledged for the broker to deliver again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ingest.metrics import Metrics
from ingest.mqtt.delivery import Delivery
from ingest.mqtt.inbox import Inbox
from ingest.mqtt.storage import BatchStore, Failure, classify

logger = logging.getLogger(__name__)


class Acknowledger(Protocol):
    def ack(self, deliveries: Sequence[Delivery]) -> int: ...


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    max_messages: int = 500
    max_wait_s: float = 0.05
    window: int = 1000  # the broker's in-flight window, when known
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
        self._lock = threading.Lock()
        self._in_hand = 0
        self._failing_since: float | None = None
        self._delay = policy.retry_min_s
        self.committed_batches = 0

    # --- life cycle
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mqtt-writer", daemon=True)
        self._thread.start()

    def stop(self, grace_s: float) -> None:
        """Finish the batch in hand within ``grace_s`` (else give it up unacknowledged)."""
        self._stopping.set()
        self._inbox.close()
        thread = self._thread
        if thread is None:
            return
        thread.join(grace_s)
        if thread.is_alive():
            logger.warning("MQTT writer still retrying at stop: giving up the batch in hand unacknowledged")
            self._abandon.set()
            thread.join(self._store.connect_timeout_s + 5)
            if thread.is_alive():
                logger.error("MQTT writer did not stop; its batch stays unacknowledged")

    @property
    def unacked(self) -> int:
        """Messages received and not yet acknowledged (queued plus in hand)."""
        with self._lock:
            return len(self._inbox) + self._in_hand

    def status(self) -> tuple[bool, str]:
        thread = self._thread
        if thread is None or not thread.is_alive():
            return False, "writer not running"
        failing = self._failing_since
        if failing is not None:
            return False, f"storage failing for {time.monotonic() - failing:.0f} s, retrying"
        return True, "ok"

    # --- the loop
    def _run(self) -> None:
        try:
            self._loop()
        except BaseException:
            # A defect, not a storage problem: nothing more is acknowledged, /readyz says so.
            logger.critical("MQTT writer stopped by an unexpected error", exc_info=True)
            raise

    def _loop(self) -> None:
        p = self.policy
        while not self._stopping.is_set():
            batch = self._inbox.take_batch(
                max_items=p.max_messages,
                max_wait_s=p.max_wait_s,
                first_timeout_s=0.25,
                idle_s=p.idle_s,
                window=p.window,
            )
            if not batch:
                continue
            with self._lock:
                self._in_hand = len(batch)
            try:
                committed = self._commit(batch)
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

    def _commit(self, batch: Sequence[Delivery]) -> bool:
        """Store the batch; True once committed, False if given up at stop (nothing acked)."""
        while True:
            try:
                self._store.store(batch)
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

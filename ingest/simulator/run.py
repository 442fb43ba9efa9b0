"""Publish a fleet's readings at a steady rate (messages per second across the fleet)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from devices.errors import PublishTimeout
from devices.mqtt.publisher import Publisher
from ingest.mqtt.topics import READINGS_LEVEL
from ingest.simulator.simulated_devices import SimulatedDevice

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class Report:
    published: int
    acknowledged: int
    refused: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.published / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "published": self.published,
            "acknowledged": self.acknowledged,
            "refused": self.refused,
            "seconds": round(self.seconds, 3),
            "rate": round(self.rate, 1),
        }


def _publish(publisher: Publisher, topic: str, payload: bytes, stop: threading.Event) -> bool:
    """Publish, waiting as long as the broker is slow; False if asked to stop meanwhile."""
    while True:
        try:
            publisher.publish(topic, payload, timeout_s=1.0)
            return True
        except PublishTimeout:
            if stop.is_set():
                return False
            logger.warning("broker not acknowledging; %d messages waiting", publisher.pending)


def simulate(
    publisher: Publisher,
    fleet: Sequence[SimulatedDevice],
    *,
    topic_prefix: str,
    rate: float,
    count: int | None = None,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
    clock: Clock = lambda: datetime.now(UTC),
    flush_timeout_s: float = 30.0,
) -> Report:
    """Round-robin over the fleet, one message every 1/``rate`` s, until ``count`` messages,
    ``duration_s`` seconds, or ``stop``; then wait for the broker's acknowledgements."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    stop = stop or threading.Event()
    started = time.monotonic()
    sent = 0
    topics = [f"{topic_prefix}/{d.device_id}/{READINGS_LEVEL}" for d in fleet]
    while not stop.is_set():
        if count is not None and sent >= count:
            break
        elapsed = time.monotonic() - started
        if duration_s is not None and elapsed >= duration_s:
            break
        ahead = sent / rate - elapsed
        if ahead > 0 and stop.wait(ahead):
            break
        i = sent % len(fleet)
        payload = json.dumps(fleet[i].measure(clock()), separators=(",", ":")).encode()
        if not _publish(publisher, topics[i], payload, stop):
            break
        sent += 1
    publisher.flush(flush_timeout_s)
    seconds = time.monotonic() - started
    logger.info("published %d messages in %.1f s", sent, seconds)
    return Report(published=sent, acknowledged=publisher.acked, refused=publisher.failed, seconds=seconds)

"""Live readings from the demo's MQTT devices while the demo runs: the devices publish to the
service's broker at QoS 1, each at its own pace, following its patient's daily curves and live
episodes (so alerts open, and clear again, while someone watches)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from devices.errors import PublishError
from devices.mqtt.publisher import Publisher
from ingest.demo.clinic import DemoDevice
from ingest.demo.curves import Physiology
from ingest.demo.history import measurement

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class LiveDevice:
    device: DemoDevice
    body: Physiology


class LiveDevices:
    """Publishes every device's readings on its own schedule from one background thread."""

    def __init__(
        self,
        publisher: Publisher,
        devices: Sequence[LiveDevice],
        *,
        topic_prefix: str,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.publisher = publisher
        self.devices = list(devices)
        self.topic_prefix = topic_prefix
        self.clock = clock
        self.published = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-devices", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)
        self.publisher.flush(timeout_s)

    def publish_once(self, live: LiveDevice) -> None:
        m = measurement(live.device, live.body, self.clock(), source="simulator")
        payload = json.dumps(m.payload, separators=(",", ":")).encode()
        self.publisher.publish(f"{self.topic_prefix}/{live.device.id}/readings", payload, timeout_s=30)
        self.published += 1

    def _run(self) -> None:
        # Stagger the first readings over a few seconds so the devices do not tick in lockstep.
        start = time.monotonic()
        due = [start + 1.0 + 0.7 * i for i in range(len(self.devices))]
        while not self._stop.is_set():
            now = time.monotonic()
            for i, live in enumerate(self.devices):
                if due[i] <= now:
                    try:
                        self.publish_once(live)
                    except PublishError as exc:
                        logger.warning("demo device could not publish: %s", exc)
                    due[i] = now + live.device.live_every_s
            self._stop.wait(max(0.05, min(due) - time.monotonic()))

"""The gateway's observation sink: time each measurement, shape wire readings, queue them.

Implements :class:`~devices.ble.collector_api.ObservationSink` for the collector. Each
observation (the measurements of one GATT value) becomes one queued message for its device, so
a blood-pressure panel always travels together. Device ids default to the Bluetooth address
without colons, upper case (``F0F1F2F3F4F5``); a mapping can name them otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from devices.ble.collector_api import Observation, RecordCursor
from devices.ble.wire import wire_reading
from devices.gateway.clock import ClockPolicy, resolve
from devices.gateway.queue import AsyncQueue
from devices.gateway.queue_store import Entry
from devices.models import DEVICE_ID_RE, MAX_STATUS_FLAGS

logger = logging.getLogger(__name__)


def default_device_id(address: str) -> str:
    return address.replace(":", "").replace("-", "").upper()


class GatewaySink:
    def __init__(
        self,
        queue: AsyncQueue,
        policy: ClockPolicy,
        *,
        now: Callable[[], datetime],
        device_ids: Mapping[str, str] | None = None,
    ) -> None:
        self._queue = queue
        self._policy = policy
        self._now = now
        self._device_ids = {k.upper(): v for k, v in (device_ids or {}).items()}
        for device_id in self._device_ids.values():
            if not DEVICE_ID_RE.fullmatch(device_id):
                raise ValueError(f"{device_id!r} is not a valid device id")
        self.delivered_readings = 0
        self._battery: dict[str, int] = {}  # address -> last level seen this run

    def device_id(self, address: str) -> str:
        return self._device_ids.get(address.upper()) or default_device_id(address)

    def readings_of(self, observation: Observation) -> list[dict[str, Any]]:
        """The wire readings of one observation, timed and flagged."""
        readings: list[dict[str, Any]] = []
        for measurement in observation.measurements:
            resolved = resolve(
                measurement.measured_at,
                observation.received_at,
                observation.clock,
                self._policy,
                device_flags=measurement.status,
            )
            reading = wire_reading(measurement, resolved.measured_at, device_time=resolved.device_time)
            status = list(dict.fromkeys([*reading["status"], *observation.extra_status, *resolved.status]))
            reading["status"] = status[:MAX_STATUS_FLAGS]
            if (battery := self._battery.get(observation.address.upper())) is not None:
                reading["battery_level"] = battery
            readings.append(reading)
        return readings

    async def deliver(
        self, observations: Sequence[Observation], cursor: RecordCursor | None = None
    ) -> None:
        entries = [
            Entry(self.device_id(o.address), readings)
            for o in observations
            if (readings := self.readings_of(o))
        ]
        if not entries and cursor is None:
            return
        result = await self._queue.enqueue(entries, cursor, now=self._now())
        self.delivered_readings += result.queued
        logger.debug(
            "queued %d reading(s), %d already held, %d dropped for space",
            result.queued, result.duplicates, result.dropped,
        )

    async def last_sequence(self, address: str, stream: str) -> int | None:
        return await self._queue.last_sequence(address, stream)

    async def battery_level(self, address: str, percent: int, observed_at: datetime) -> None:
        self._battery[address.upper()] = percent
        await self._queue.set_battery(address, percent, observed_at)
        if percent <= 15:
            logger.warning("device %s battery low (%d%%)", self.device_id(address), percent)

"""Emulated live-measurement devices: heart-rate strap, pulse oximeter, thermometer, scale.

The strap and the oximeter's continuous channel stream notifications while a central listens.
The thermometer, the scale and the oximeter's spot-checks keep measurements taken while nobody
was connected and indicate them, oldest first, once the central enables indications (what the
Health Thermometer and Weight Scale services ask of a device with storage). Stored-record devices
that answer RACP requests live in :mod:`.record_devices`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta

from bumble import att, gatt
from bumble.device import Connection

from devices.ble.emulated import encoding
from devices.ble.emulated.peripheral import EmulatedPeripheral, characteristic

logger = logging.getLogger(__name__)

_PROPS = gatt.Characteristic.Properties
_NOW = timedelta(0)


class _StoreAndSend(EmulatedPeripheral):
    """Keeps unsent measurement values and indicates them when indications are enabled."""

    def _stored_measurement(self, uuid: int) -> gatt.Characteristic[bytes]:
        """The indicated measurement characteristic whose values wait in ``pending`` until a
        central enables indications."""
        measurement_char = characteristic(uuid, _PROPS.INDICATE)
        self._measurement_char = measurement_char
        self.pending: list[bytes] = []
        self._flush_task: asyncio.Task[None] | None = None
        measurement_char.on(gatt.Characteristic.EVENT_SUBSCRIPTION, self._on_subscription)
        return measurement_char

    def _on_subscription(self, _bearer: att.Bearer, notify: bool, indicate: bool) -> None:
        if (notify or indicate) and self.pending:
            self._flush_task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        await asyncio.sleep(0)
        while self.pending:
            if not await self.send(self._measurement_char, self.pending[0]):
                return
            self.pending.pop(0)

    async def _deliver(self, value: bytes) -> bool:
        """Send now when someone listens (and nothing older waits), else keep it for later."""
        if not self.pending and await self.send(self._measurement_char, value):
            return True
        self.pending.append(value)
        return False


class HeartRateStrap(EmulatedPeripheral):
    """Heart Rate service (0x180D): Heart Rate Measurement notifications, chest sensor."""

    SERVICE_UUID = 0x180D
    MODEL = "HR-1 chest strap"

    def build_services(self) -> list[gatt.Service]:
        self.measurement = characteristic(0x2A37, _PROPS.NOTIFY)
        location = characteristic(0x2A38, _PROPS.READ, b"\x01")
        return [gatt.Service(gatt.GATT_HEART_RATE_SERVICE, [self.measurement, location])]

    async def send_heart_rate(self, bpm: int, rr_intervals_s: Sequence[float] = ()) -> bool:
        return await self.send(self.measurement, encoding.heart_rate(bpm, rr_intervals_s=rr_intervals_s))

    async def stream(self, bpm: Callable[[], int], interval_s: float) -> None:
        """Notify ``bpm()`` every ``interval_s`` while a central listens; runs until cancelled."""
        while True:
            if self.subscribed(self.measurement):
                value = bpm()
                await self.send_heart_rate(value, (60.0 / max(value, 1),))
            await asyncio.sleep(interval_s)


class PulseOximeter(_StoreAndSend):
    """Pulse Oximeter service (0x1822): spot-checks (indicate, stored) and continuous (notify).

    Without Current Time its clock is never set, so spot-checks carry the "device clock is not
    set" flag and a timestamp counted from 2000-01-01.
    """

    SERVICE_UUID = 0x1822
    MODEL = "OX-2 fingertip"

    def build_services(self) -> list[gatt.Service]:
        self.spot_check = self._stored_measurement(0x2A5E)
        self.continuous = characteristic(0x2A5F, _PROPS.NOTIFY)
        features = characteristic(0x2A60, _PROPS.READ, b"\x00\x00")
        return [
            gatt.Service(gatt.GATT_PULSE_OXIMETER_SERVICE, [self.spot_check, self.continuous, features])
        ]

    async def measure(self, spo2: float, pulse: float, *, ago: timedelta = _NOW) -> bool:
        """A spot-check (taken ``ago``, by the device clock); True when it went out live, False
        when it is stored for later."""
        value = encoding.plx_spot_check(
            spo2, pulse, at=self.clock.now() - ago, clock_not_set=not self.clock.was_set
        )
        return await self._deliver(value)

    async def stream(self, reading: Callable[[], tuple[float, float]], interval_s: float) -> None:
        """Continuous SpO2/pulse notifications while a central listens; runs until cancelled."""
        while True:
            if self.subscribed(self.continuous):
                spo2, pulse = reading()
                await self.send(self.continuous, encoding.plx_continuous(spo2, pulse))
            await asyncio.sleep(interval_s)


class Thermometer(_StoreAndSend):
    """Health Thermometer service (0x1809): time-stamped Temperature Measurement indications."""

    SERVICE_UUID = 0x1809
    MODEL = "TH-3 oral"

    def build_services(self) -> list[gatt.Service]:
        self.measurement = self._stored_measurement(0x2A1C)
        temperature_type = characteristic(0x2A1D, _PROPS.READ, b"\x06")
        return [gatt.Service(gatt.GATT_HEALTH_THERMOMETER_SERVICE, [self.measurement, temperature_type])]

    async def measure(
        self, celsius: float, *, fahrenheit: bool = False, ago: timedelta = _NOW
    ) -> bool:
        value = round(celsius * 9 / 5 + 32, 1) if fahrenheit else celsius
        return await self._deliver(
            encoding.temperature(value, at=self.clock.now() - ago, fahrenheit=fahrenheit, site=6)
        )


class Scale(_StoreAndSend):
    """Weight Scale service (0x181D): time-stamped Weight Measurement indications."""

    SERVICE_UUID = 0x181D
    MODEL = "WS-4 bathroom scale"

    def build_services(self) -> list[gatt.Service]:
        self.measurement = self._stored_measurement(0x2A9D)
        feature = characteristic(0x2A9E, _PROPS.READ, b"\x01\x00\x00\x00")
        return [gatt.Service(gatt.GATT_WEIGHT_SCALE_SERVICE, [self.measurement, feature])]

    async def measure(
        self, kilograms: float, *, imperial: bool = False, user_id: int = 1, ago: timedelta = _NOW
    ) -> bool:
        return await self._deliver(
            encoding.weight(kilograms, at=self.clock.now() - ago, user_id=user_id, imperial=imperial)
        )

    def on_connected(self, connection: Connection) -> None:
        logger.debug("%s: %d stored measurements wait for indications", self.name, len(self.pending))


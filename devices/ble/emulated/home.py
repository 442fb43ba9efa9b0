"""An emulated patient's home: six health devices on a virtual radio, plus the real gateway.

:func:`run_emulated_home` is what ``rpm-ingest demo`` (and the end-to-end tests) call: it starts
the devices, the production collector over the bumble bleak backend, and the production gateway
publishing to the given broker, then makes the devices measure now and then until cancelled.
:func:`home_devices` tells the caller, before anything runs, which device ids will publish (so they
can be registered and assigned to a patient first).

The clocks are deliberately imperfect: the cuff runs a day fast, the glucose meter was never
set, the thermometer lags three hours and cannot be set, the oximeter has no clock service. The
cuff's and the meter's record numbering survives a restart (kept beside the gateway's queue), as
a real device's does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta, tzinfo
from pathlib import Path
from typing import Literal

from devices.ble.collector import BleakCentral
from devices.ble.emulated.bleak_backend import BumbleAdapter
from devices.ble.emulated.live_devices import HeartRateStrap, PulseOximeter, Scale, Thermometer
from devices.ble.emulated.numbering import RecordNumbering
from devices.ble.emulated.peripheral import DeviceClock, EmulatedPeripheral
from devices.ble.emulated.radio import VirtualRadio
from devices.ble.emulated.record_devices import BloodPressureCuff, GlucoseMeter
from devices.gateway.pipeline import default_device_id
from devices.gateway.runner import Gateway, GatewaySettings, local_zone
from devices.mqtt.options import broker_options

logger = logging.getLogger(__name__)

Profile = Literal["normal", "hypertensive", "hypoxic", "febrile", "tachycardic"]
_KINDS: tuple[tuple[str, type[EmulatedPeripheral], str], ...] = (
    ("heart_rate_monitor", HeartRateStrap, "HR strap"),
    ("blood_pressure_monitor", BloodPressureCuff, "BP cuff"),
    ("pulse_oximeter", PulseOximeter, "Oximeter"),
    ("thermometer", Thermometer, "Thermometer"),
    ("weight_scale", Scale, "Scale"),
    ("glucose_meter", GlucoseMeter, "Glucose meter"),
)


@dataclass(frozen=True, slots=True)
class HomeDevice:
    address: str
    device_id: str
    type: str
    name: str
    manufacturer: str
    model: str


def home_devices(home: int) -> list[HomeDevice]:
    """The devices of emulated home number ``home`` (0-255), in a fixed order."""
    if not 0 <= home <= 0xFF:
        raise ValueError("home must be 0..255")
    devices = []
    for index, (kind, cls, label) in enumerate(_KINDS):
        address = f"F0:E0:{home:02X}:00:00:{index + 1:02X}"
        devices.append(
            HomeDevice(
                address, default_device_id(address), kind, f"{label} {home}", cls.MANUFACTURER, cls.MODEL
            )
        )
    return devices


class EmulatedHome:
    """The devices of one home on their own virtual radio, with the gateway's adapter.

    Create it inside a running event loop (bumble's controllers bind to it). With ``numbering``
    the record devices carry on numbering from where they stopped last time.
    """

    def __init__(
        self,
        home: int = 0,
        *,
        tz: tzinfo | None = None,
        seed: int = 0,
        numbering: RecordNumbering | None = None,
    ) -> None:
        self.home = home
        self.tz = tz or local_zone()
        self.radio = VirtualRadio()
        self.adapter = BumbleAdapter(self.radio.create_device("home-hub", f"C0:E0:{home:02X}:00:00:00"))
        self.rng = random.Random(seed)
        info = home_devices(home)
        self.info = info
        self.strap = HeartRateStrap(info[0].address, info[0].name)
        self.cuff = BloodPressureCuff(
            info[1].address,
            info[1].name,
            current_time="write",
            clock=DeviceClock(skew=timedelta(days=1), tz=self.tz),
            numbering=numbering,
        )
        self.oximeter = PulseOximeter(
            info[2].address, info[2].name, clock=DeviceClock(unset=True, tz=self.tz)
        )
        self.thermometer = Thermometer(
            info[3].address,
            info[3].name,
            current_time="read",
            clock=DeviceClock(skew=-timedelta(hours=3, minutes=17), tz=self.tz),
        )
        self.scale = Scale(info[4].address, info[4].name, current_time="write", clock=DeviceClock(tz=self.tz))
        self.glucose = GlucoseMeter(
            info[5].address,
            info[5].name,
            current_time="write",
            clock=DeviceClock(unset=True, tz=self.tz),
            numbering=numbering,
        )

    @property
    def peripherals(self) -> list[EmulatedPeripheral]:
        return [self.strap, self.cuff, self.oximeter, self.thermometer, self.scale, self.glucose]

    @property
    def addresses(self) -> frozenset[str]:
        return frozenset(p.address for p in self.peripherals)

    async def start(self) -> None:
        await self.adapter.power_on()
        for peripheral in self.peripherals:
            await peripheral.start(self.radio)

    async def stop(self) -> None:
        for peripheral in self.peripherals:
            await peripheral.stop()

    def central(self) -> BleakCentral:
        """The production Bluetooth adapter class, over the bumble backend of this home."""
        return BleakCentral(
            scanner_backend=self.adapter.scanner_backend, client_backend=self.adapter.client_backend
        )

    async def live(self, profile: Profile, interval_s: float) -> None:
        """Measure every ``interval_s`` (and stream heart rate and SpO2) until cancelled."""
        values = _Vitals(profile, self.rng)
        streams = [
            asyncio.create_task(self.strap.stream(values.heart_rate, 1.0)),
            asyncio.create_task(self.oximeter.stream(values.oximetry, 1.0)),
        ]
        try:
            while True:
                systolic, diastolic = values.blood_pressure()
                await self.cuff.measure(systolic, diastolic, values.heart_rate())
                self.glucose.measure(values.glucose(), meal=self.rng.choice((1, 2, 3)))
                await self.thermometer.measure(values.temperature())
                await self.scale.measure(values.weight())
                await self.oximeter.measure(*values.oximetry())
                await asyncio.sleep(interval_s)
        finally:
            for stream in streams:
                stream.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stream


class _Vitals:
    def __init__(self, profile: Profile, rng: random.Random) -> None:
        self._p = profile
        self._rng = rng
        self._weight = rng.uniform(60, 95)

    def _around(self, centre: float, spread: float) -> float:
        return centre + self._rng.uniform(-spread, spread)

    def heart_rate(self) -> int:
        return round(self._around(124 if self._p == "tachycardic" else 72, 6))

    def blood_pressure(self) -> tuple[float, float]:
        if self._p == "hypertensive":
            return float(round(self._around(168, 8))), float(round(self._around(102, 5)))
        return float(round(self._around(122, 8))), float(round(self._around(79, 5)))

    def oximetry(self) -> tuple[float, float]:
        spo2 = self._around(88, 1.5) if self._p == "hypoxic" else self._around(97, 1.5)
        return float(min(round(spo2), 100)), float(self.heart_rate())

    def temperature(self) -> float:
        return round(self._around(39.1 if self._p == "febrile" else 36.8, 0.3), 1)

    def weight(self) -> float:
        self._weight += self._rng.uniform(-0.2, 0.2)
        return round(self._weight * 200) / 200

    def glucose(self) -> float:
        return float(round(self._around(105, 20)))


def record_numbering(data_dir: Path) -> RecordNumbering:
    """The emulated record devices' numbering kept in ``data_dir`` (beside the gateway's queue,
    whose record cursors expect a restarted device to carry on numbering)."""
    return RecordNumbering(data_dir / "emulated-record-numbers.json")


async def run_emulated_home(
    broker_url: str,
    *,
    data_dir: Path,
    home: int = 0,
    gateway_id: str | None = None,
    topic_prefix: str = "rpm",
    profile: Profile = "normal",
    measure_every_s: float = 30.0,
    tz: tzinfo | None = None,
    seed: int = 0,
    on_ready: Callable[[Gateway], None] | None = None,
) -> None:
    """Run one emulated home and its gateway against ``broker_url`` until cancelled.

    Readings arrive on ``<topic_prefix>/<device_id>/readings`` with ids from :func:`home_devices`.
    The gateway's queue, and the record devices' numbering (:func:`record_numbering`), live
    under ``data_dir``.
    """
    emulated = EmulatedHome(home, tz=tz, seed=seed, numbering=record_numbering(data_dir))
    gateway_name = gateway_id or f"home-hub-{home}"
    settings = GatewaySettings(
        gateway_id=gateway_name,
        data_dir=data_dir,
        broker=broker_options(broker_url, client_id=f"{gateway_name}-{seed}", protocol="3.1.1"),
        tz=emulated.tz,
        topic_prefix=topic_prefix,
        allow=emulated.addresses,
        continuous_interval=timedelta(seconds=max(measure_every_s, 1.0)),
        record_poll_interval=max(measure_every_s / 2, 1.0),
        settle_time=0.3,
    )
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(_radio_quirks_as_info)
    try:
        await emulated.start()
        gateway = Gateway(settings, emulated.central())
        if on_ready is not None:
            on_ready(gateway)
        activity = asyncio.create_task(emulated.live(profile, measure_every_s), name=f"home-{home}")
        try:
            await gateway.run()
        finally:
            activity.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await activity
            await emulated.stop()
    finally:
        loop.set_exception_handler(previous)


def _radio_quirks_as_info(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
    """The loop's exception handler while an emulated home runs: an exception raised inside the
    emulated radio's own callbacks (bumble's host and controller, not our code) is logged at INFO.
    Seen when the gateway stops in the middle of a connection: bumble then completes a connection
    whose attempt was cancelled and asserts. The gateway only ever sees the radio through bleak's
    interface, where such a connection is just one that did not happen. Anything else goes to the
    loop's default handler."""
    exc = context.get("exception")
    tb = exc.__traceback__ if isinstance(exc, BaseException) else None
    while tb is not None and tb.tb_next is not None:  # the frame that raised
        tb = tb.tb_next
    if tb is not None and f"{os.sep}bumble{os.sep}" in tb.tb_frame.f_code.co_filename:
        logger.info("emulated radio: %s (%s: %s)", context.get("message"), type(exc).__name__, exc)
        return
    loop.default_exception_handler(context)

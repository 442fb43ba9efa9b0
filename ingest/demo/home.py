"""The demo's Bluetooth home: emulated health devices behind the real home gateway, in a thread.

The devices, the bleak collector (over the bumble backend) and the gateway's durable queue and
MQTT publisher are the production code of ``devices``; this module only gives them an event loop
of their own and maps the home's devices onto a demo patient.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from datetime import tzinfo
from pathlib import Path
from typing import Final

from devices.ble.emulated.home import HomeDevice, Profile, home_devices, run_emulated_home
from ingest.demo.clinic import BP_HOURS, FOUR_TIMES, HOURLY, DemoDevice

logger = logging.getLogger(__name__)

#: what each kind of home device measures, and when the patient used it in the past month
_KIND_METRICS: Final[dict[str, tuple[tuple[str, ...], tuple[float, ...]]]] = {
    "heart_rate_monitor": (("heart_rate",), HOURLY),
    "blood_pressure_monitor": (("systolic_bp", "diastolic_bp", "heart_rate"), BP_HOURS),
    "pulse_oximeter": (("spo2", "heart_rate"), FOUR_TIMES),
    "thermometer": (("body_temperature",), (8.0,)),
    # no weight history: the emulated scale picks its own patient weight, and a history around
    # another weight would read as a sudden gain
    "weight_scale": (("body_weight",), ()),
    "glucose_meter": (("blood_glucose",), (7.0, 12.0, 18.0)),
}


def demo_devices(home: int) -> list[DemoDevice]:
    """The home's devices as demo devices (for registration and their history)."""
    out = []
    for d in home_devices(home):
        metrics, hours = _KIND_METRICS[d.type]
        out.append(DemoDevice(d.device_id, d.type, d.manufacturer, d.model, metrics, hours, 0.0))
    return out


class HomeRunner:
    """Runs :func:`run_emulated_home` on an event loop in its own thread until :meth:`stop`."""

    def __init__(
        self,
        broker_url: str,
        *,
        data_dir: Path,
        topic_prefix: str,
        home: int = 0,
        gateway_id: str | None = None,
        profile: Profile = "normal",
        measure_every_s: float = 30.0,
        tz: tzinfo | None = None,
    ) -> None:
        self.broker_url = broker_url
        self.data_dir = data_dir
        self.topic_prefix = topic_prefix
        self.home = home
        self.gateway_id = gateway_id
        self.profile: Profile = profile
        self.measure_every_s = measure_every_s
        self.tz = tz
        self.devices: list[HomeDevice] = home_devices(home)
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"demo-home-{home}", daemon=True)

    def start(self, timeout_s: float = 30.0) -> None:
        self._thread.start()
        if not self._started.wait(timeout_s):
            logger.warning("the emulated home did not start within %.0f s", timeout_s)

    def stop(self, timeout_s: float = 20.0) -> None:
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(task.cancel)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            logger.warning("the emulated home did not stop within %.0f s", timeout_s)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as exc:  # noqa: BLE001 - reported, the rest of the demo keeps running
            self.error = exc
            logger.error("the emulated Bluetooth home stopped: %s", exc)
        finally:
            self._started.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(
            run_emulated_home(
                self.broker_url,
                data_dir=self.data_dir,
                home=self.home,
                gateway_id=self.gateway_id,
                topic_prefix=self.topic_prefix,
                profile=self.profile,
                measure_every_s=self.measure_every_s,
                tz=self.tz,
                on_ready=lambda _gateway: self._started.set(),
            ),
            name="emulated-home",
        )
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

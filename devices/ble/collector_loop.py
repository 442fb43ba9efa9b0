"""The collector: scan for paired health devices and keep a session with each, reconnecting.

Only devices on the allow-list (the devices paired with this home, by address) are connected to;
others advertising a health service are logged at DEBUG and left alone, unless the collector is
told to accept any (demos, first-time setup). Each allowed device gets its own supervisor task:
wait until it advertises, connect (one connection attempt at a time on the adapter, which is what
BlueZ copes with best), run a :class:`~devices.ble.collector_session.DeviceSession` until the link
drops, then back off (exponentially with jitter after failures) and wait for it again.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from devices.ble.collector_api import BleCentral, BleError, ObservationSink, Sighting
from devices.ble.collector_session import DeviceSession, SessionSettings
from devices.errors import DevicesError

logger = logging.getLogger(__name__)


def normalise_address(address: str) -> str:
    """``f0f1f2f3f4f5`` / ``F0-F1-…`` / ``f0:f1:…`` -> ``F0:F1:F2:F3:F4:F5``."""
    hexdigits = "".join(ch for ch in address if ch not in ":-").upper()
    if len(hexdigits) != 12 or any(ch not in "0123456789ABCDEF" for ch in hexdigits):
        raise ValueError(f"{address!r} is not a Bluetooth address")
    return ":".join(hexdigits[i:i + 2] for i in range(0, 12, 2))


@dataclass(frozen=True, slots=True)
class CollectorSettings:
    session: SessionSettings
    allow: frozenset[str] = frozenset()
    """Addresses (upper case, with colons) of the paired devices to collect from."""
    accept_any: bool = False
    """Collect from every device advertising a health service (never on a shared street)."""
    connect_timeout: float = 30.0
    backoff_initial: float = 1.0
    backoff_max: float = 300.0
    reconnect_delay: float = 1.0
    """Pause after a session ended normally before connecting again."""
    scan_restart_interval: float = 300.0


@dataclass
class DeviceState:
    address: str
    seen: asyncio.Event = field(default_factory=asyncio.Event)
    failures: int = 0
    sessions: int = 0
    connected: bool = False
    session: DeviceSession | None = None
    """The current (or last) session, for status reporting."""


class Collector:
    """Runs until cancelled; :meth:`run` owns the scan and one supervisor task per device."""

    def __init__(
        self,
        central: BleCentral,
        sink: ObservationSink,
        settings: CollectorSettings,
        *,
        now: Callable[[], datetime],
        rng: random.Random | None = None,
    ) -> None:
        self._central = central
        self._sink = sink
        self._settings = settings
        self._now = now
        self._rng = rng or random.Random()
        self._devices: dict[str, DeviceState] = {}
        self._supervisors: dict[str, asyncio.Task[None]] = {}
        self._ignored: set[str] = set()
        self._connect_lock = asyncio.Lock()

    @property
    def devices(self) -> dict[str, DeviceState]:
        return self._devices

    def allowed(self, address: str) -> bool:
        return self._settings.accept_any or address in self._settings.allow

    async def run(self) -> None:
        allow: Iterable[str] = self._settings.allow
        for address in allow:
            self._ensure_supervisor(address)
        logger.info(
            "collector started: %d paired device(s)%s", len(self._settings.allow),
            ", accepting any health device" if self._settings.accept_any else "",
        )
        try:
            await self._scan_forever()
        finally:
            for task in self._supervisors.values():
                task.cancel()
            await asyncio.gather(*self._supervisors.values(), return_exceptions=True)

    async def _scan_forever(self) -> None:
        """Keep a scan open, restarting it now and then (an adapter reset can silently end a
        scan); if the adapter is missing or fails, retry (BlueZ restarted, a USB adapter
        re-plugged) while the rest of the gateway goes on publishing its queue."""
        failures = 0
        while True:
            try:
                async with self._central.scan(self._on_sighting):
                    failures = 0
                    await asyncio.sleep(self._settings.scan_restart_interval)
            except BleError as exc:
                failures += 1
                delay = min(self._settings.backoff_max, 5.0 * 2 ** min(failures - 1, 6))
                logger.error("Bluetooth scanning failed (%s); retrying in %.0fs", exc, delay)
                await asyncio.sleep(delay)

    def _on_sighting(self, sighting: Sighting) -> None:
        address = sighting.address.upper()
        if not self.allowed(address):
            if address not in self._ignored:
                self._ignored.add(address)
                logger.debug("ignoring unpaired health device %s", address)
            return
        self._ensure_supervisor(address).seen.set()

    def _ensure_supervisor(self, address: str) -> DeviceState:
        state = self._devices.get(address)
        if state is None:
            state = self._devices[address] = DeviceState(address)
            self._supervisors[address] = asyncio.create_task(
                self._supervise(state), name=f"ble-device-{address}"
            )
        return state

    def _backoff(self, failures: int) -> float:
        ceiling = min(
            self._settings.backoff_max, self._settings.backoff_initial * 2.0 ** (failures - 1)
        )
        return float(ceiling / 2 + self._rng.uniform(0, ceiling / 2))

    async def _supervise(self, state: DeviceState) -> None:
        settings = self._settings
        while True:
            await state.seen.wait()
            state.seen.clear()
            try:
                async with self._connect_lock:
                    link = await self._central.connect(state.address, timeout=settings.connect_timeout)
            except BleError as exc:
                state.failures += 1
                delay = self._backoff(state.failures)
                logger.warning(
                    "%s: connection failed (%s); retrying in %.1fs", state.address, exc, delay
                )
                await asyncio.sleep(delay)
                continue
            state.connected = True
            state.sessions += 1
            logger.info("%s: connected", state.address)
            try:
                state.session = DeviceSession(link, self._sink, settings.session, now=self._now)
                stats = await state.session.run()
            except DevicesError as exc:  # link trouble, or the gateway could not keep a value
                state.failures += 1
                delay = self._backoff(state.failures)
                logger.warning("%s: session failed (%s); retrying in %.1fs", state.address, exc, delay)
            else:
                state.failures = 0
                delay = settings.reconnect_delay
                logger.info(
                    "%s: disconnected after %d observation(s), %d undecodable value(s)",
                    state.address, stats.observations, stats.malformed,
                )
            finally:
                state.connected = False
                await link.disconnect()
            await asyncio.sleep(delay)

"""The collector's view of the outside world, as small interfaces (no bleak here).

``BleCentral``/``BleLink`` is what the collector needs from a Bluetooth stack; the production
implementation over bleak lives in :mod:`devices.ble.collector` (the one module importing bleak).
``ObservationSink`` is where decoded measurements go: the home gateway implements it with its
durable queue (:mod:`devices.gateway.pipeline`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

from devices.ble.characteristics import SERVICES, full_uuid
from devices.ble.result import Measurement
from devices.errors import DevicesError

# The health services the collector looks for, by 16-bit UUID (the table's services).
HEALTH_SERVICES: Final[Mapping[int, str]] = SERVICES
HEALTH_SERVICE_UUIDS: Final[tuple[str, ...]] = tuple(full_uuid(u) for u in HEALTH_SERVICES)


class BleError(DevicesError):
    """A Bluetooth operation failed: the device could not be reached or the link went down."""


class GattError(BleError):
    """The device refused a GATT operation with an ATT error code (e.g. 0xFD, 0x81)."""

    def __init__(self, what: str, code: int) -> None:
        super().__init__(f"{what}: ATT error 0x{code:02X}")
        self.code = code


@dataclass(frozen=True, slots=True)
class Sighting:
    """One advertisement: who (``address``, upper case with colons) and which services."""

    address: str
    name: str | None
    service_uuids: tuple[str, ...]
    rssi: int | None = None


@dataclass(frozen=True, slots=True)
class CharacteristicInfo:
    uuid: str
    """128-bit, lower case (``0000xxxx-0000-1000-8000-00805f9b34fb``)."""
    service_uuid: str
    properties: frozenset[str]
    """bleak property names: ``read``, ``write``, ``notify``, ``indicate``…"""


class BleLink(Protocol):
    """A connected device."""

    @property
    def address(self) -> str: ...

    @property
    def characteristics(self) -> Mapping[str, CharacteristicInfo]:
        """The device's characteristics by UUID (the first when a UUID repeats)."""
        ...

    @property
    def is_connected(self) -> bool: ...

    async def read(self, uuid: str) -> bytes: ...

    async def write(self, uuid: str, data: bytes, *, response: bool = True) -> None: ...

    async def subscribe(self, uuid: str, callback: Callable[[bytes], None]) -> None:
        """Enable notifications (or indications, when that is all it offers) on ``uuid``.

        ``callback`` runs in the event loop, in arrival order, and must not block.
        """
        ...

    async def wait_closed(self) -> None:
        """Return once the link is down (at once if it already is)."""
        ...

    async def disconnect(self) -> None: ...


class BleCentral(Protocol):
    """The gateway's Bluetooth adapter."""

    def scan(self, on_sighting: Callable[[Sighting], None]) -> AbstractAsyncContextManager[None]:
        """Scan for health devices while the context is open."""
        ...

    async def connect(self, address: str, *, timeout: float) -> BleLink:
        """Connect (with retries) to a device seen while scanning; raise :class:`BleError`."""
        ...


@dataclass(frozen=True, slots=True)
class ClockReference:
    """A simultaneous reading of the device's clock and the gateway's.

    ``device_time`` is the device's local wall-clock time (naive) at ``gateway_time`` (aware).
    ``device_time`` None means the device reports its clock as unknown.
    """

    device_time: datetime | None
    gateway_time: datetime


@dataclass(frozen=True, slots=True)
class Observation:
    """The measurements decoded from one GATT value, with what is needed to time them."""

    address: str
    characteristic: str
    """16-bit UUID as four lower-case hex digits, e.g. ``"2a35"``."""
    measurements: tuple[Measurement, ...]
    received_at: datetime
    """Aware; when the gateway received the value."""
    clock: ClockReference | None
    """The device clock as known when the value arrived (None: not known)."""
    stored: bool = False
    """The value came out of the device's memory (a record transfer), not live."""
    extra_status: tuple[str, ...] = ()
    """Status flags the collector adds (e.g. a glucose record's meal context)."""


@dataclass(frozen=True, slots=True)
class RecordCursor:
    """Where the stored-record transfer of one device's record stream got to."""

    address: str
    stream: str
    sequence: int


class ObservationSink(Protocol):
    """Where the collector hands decoded measurements; implemented by the gateway's queue."""

    async def deliver(
        self, observations: Sequence[Observation], cursor: RecordCursor | None = None
    ) -> None:
        """Keep ``observations`` durably; when ``cursor`` is given, record it atomically with
        them. Returns only once they are safe (on disk)."""
        ...

    async def last_sequence(self, address: str, stream: str) -> int | None:
        """The last record sequence number kept for this device's stream (None: never synced)."""
        ...

    async def battery_level(self, address: str, percent: int, observed_at: datetime) -> None:
        """The device's battery level, when it offers one."""
        ...

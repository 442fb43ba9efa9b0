"""What every emulated health device shares: advertising, its clock, battery, Current Time, faults.

A subclass lists its GATT services; this base puts the device on a
:class:`~devices.ble.emulated.radio.VirtualRadio`, advertises its health service until a central
connects (and again after the link drops), and offers the common services real devices carry:
Device Information, Battery (0x180F) and, when asked, Current Time (0x1805) — read-only, or
writable so the gateway can set the clock. Tests steer misbehaviour through :attr:`faults`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import ClassVar, Literal

from bumble import att, core, gatt
from bumble.core import AdvertisingData
from bumble.device import Connection, Device

from devices.ble.emulated import encoding
from devices.ble.emulated.radio import VirtualRadio

logger = logging.getLogger(__name__)

CurrentTimeMode = Literal["none", "read", "write"]
_UNSET_CLOCK_EPOCH = datetime(2000, 1, 1)
_PROPS = gatt.Characteristic.Properties
_READABLE = gatt.Characteristic.Permissions.READABLE
_READ_WRITE = gatt.Characteristic.Permissions.READABLE | gatt.Characteristic.Permissions.WRITEABLE
REASON_CONNECTION_TIMEOUT = 0x08
REASON_REMOTE_USER = 0x13


class DeviceClock:
    """A device's wall clock (local time, no zone), set correctly, skewed, or never set.

    An unset clock counts up from 2000-01-01 00:00 at power-on, as many cheap devices do. Writing
    Current Time sets it. ``tz`` is the zone the device's owner lives in (default: the host's).
    """

    def __init__(
        self,
        *,
        skew: timedelta = timedelta(0),
        unset: bool = False,
        tz: tzinfo | None = None,
        wall: Callable[[], datetime] | None = None,
    ) -> None:
        self._tz = tz
        self._wall = wall or (lambda: datetime.now(self._tz).replace(tzinfo=None))
        self._skew = (_UNSET_CLOCK_EPOCH - self._wall()) if unset else skew
        self.was_set = False

    def now(self) -> datetime:
        return self._wall() + self._skew

    def set_to(self, moment: datetime) -> None:
        self._skew = moment - self._wall()
        self.was_set = True


@dataclass
class Faults:
    """Misbehaviour to inject; counters count down as each fault fires."""

    garbage_next: int = 0
    """Replace the next N measurement values with random bytes."""
    truncate_next: int = 0
    """Cut the next N measurement values short."""
    drop_link_after_records: int | None = None
    """During a stored-record transfer, drop the link after this many records (fires once)."""
    racp_fail_after_records: int | None = None
    """During a stored-record transfer, stop after this many records and answer 'procedure not
    completed' (fires once)."""
    racp_stall_after_records: int | None = None
    """During a stored-record transfer, go silent after this many records (fires once)."""


class EmulatedPeripheral:
    """Base of the emulated devices. Subclasses set ``SERVICE_UUID`` and build their services."""

    SERVICE_UUID: ClassVar[int]
    MODEL: ClassVar[str] = "Emulated"
    MANUFACTURER: ClassVar[str] = "RPM Reference Devices"

    def __init__(
        self,
        address: str,
        name: str,
        *,
        clock: DeviceClock | None = None,
        battery_level: int | None = 90,
        current_time: CurrentTimeMode = "none",
        advertising_interval_ms: int = 100,
        seed: int = 0,
    ) -> None:
        self.address = address.upper()
        self.name = name
        self.clock = clock or DeviceClock()
        self.battery_level = battery_level
        self.current_time_mode = current_time
        self.advertising_interval_ms = advertising_interval_ms
        self.faults = Faults()
        self.connections_made = 0
        self._random = random.Random(seed)
        self._device: Device | None = None
        self._connection: Connection | None = None
        self._battery_char: gatt.Characteristic[bytes] | None = None
        self._services = self.build_services()

    # life cycle -------------------------------------------------------------------------------

    async def start(self, radio: VirtualRadio) -> None:
        """Join the radio, build the GATT database and start advertising."""
        device = radio.create_device(self.name, self.address)
        self._device = device
        device.add_services(self._services + self._common_services())
        device.on(Device.EVENT_CONNECTION, self._on_connection)
        await device.power_on()
        device.advertising_data = bytes(
            AdvertisingData(
                [
                    (AdvertisingData.FLAGS, bytes((0x06,))),
                    (AdvertisingData.COMPLETE_LOCAL_NAME, self.name.encode()),
                    (
                        AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
                        struct.pack("<H", self.SERVICE_UUID),
                    ),
                ]
            )
        )
        await device.start_advertising(
            auto_restart=True,
            advertising_interval_min=self.advertising_interval_ms,
            advertising_interval_max=self.advertising_interval_ms,
        )
        logger.debug("%s advertising as %s", self.name, self.address)

    async def stop(self) -> None:
        """Drop any link and power off."""
        if self._device is None:
            return
        await self.drop_link(REASON_REMOTE_USER)
        await self._device.stop_advertising()
        await self._device.power_off()

    def build_services(self) -> list[gatt.Service]:
        raise NotImplementedError

    # connection -------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connection is not None

    @property
    def connection(self) -> Connection | None:
        return self._connection

    async def drop_link(self, reason: int = REASON_CONNECTION_TIMEOUT) -> None:
        """Terminate the link from the device side (battery pulled, walked out of range)."""
        connection = self._connection
        if connection is None:
            return
        try:
            await connection.disconnect(reason)
        except core.BaseBumbleError as exc:
            logger.debug("%s: disconnect failed: %s", self.name, exc)

    def _on_connection(self, connection: Connection) -> None:
        self._connection = connection
        self.connections_made += 1
        connection.on(Connection.EVENT_DISCONNECTION, self._on_disconnection)
        self.on_connected(connection)

    def _on_disconnection(self, reason: int) -> None:
        self._connection = None
        self.on_disconnected()

    def on_connected(self, connection: Connection) -> None:
        """Hook for subclasses."""

    def on_disconnected(self) -> None:
        """Hook for subclasses."""

    # sending ----------------------------------------------------------------------------------

    def subscribed(self, characteristic: gatt.Characteristic[bytes]) -> bool:
        """Whether the connected central enabled notifications or indications on it."""
        if self._device is None or self._connection is None:
            return False
        cccds = self._device.gatt_server.subscribers.get(self._connection, {})
        cccd = cccds.get(characteristic.handle)
        return bool(cccd and cccd[0] & 0x03)

    async def send(
        self, characteristic: gatt.Characteristic[bytes], value: bytes, *, measurement: bool = True
    ) -> bool:
        """Notify or indicate (per the characteristic's properties) ``value`` to the central.

        Measurement values pass through the fault injector. False when nobody is listening or
        the link went down.
        """
        device, connection = self._device, self._connection
        if device is None or connection is None or not self.subscribed(characteristic):
            return False
        if measurement:
            value = self._mangle(value)
        try:
            if characteristic.properties & _PROPS.INDICATE:
                await device.indicate_subscriber(connection, characteristic, value)
            else:
                await device.notify_subscriber(connection, characteristic, value)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # we are being cancelled; not a failed send
            logger.debug("%s: send abandoned: the link went down", self.name)
            return False
        except (core.BaseBumbleError, TimeoutError, KeyError) as exc:
            # KeyError: bumble forgets a link's indication state as soon as the link drops
            logger.debug("%s: send failed: %r", self.name, exc)
            return False
        return True

    def _mangle(self, value: bytes) -> bytes:
        faults = self.faults
        if faults.garbage_next > 0:
            faults.garbage_next -= 1
            return bytes(self._random.randrange(256) for _ in range(self._random.randrange(1, 24)))
        if faults.truncate_next > 0:
            faults.truncate_next -= 1
            return value[: max(1, len(value) // 2)]
        return value

    def set_battery_level(self, level: int) -> None:
        self.battery_level = level

    # common services --------------------------------------------------------------------------

    def _common_services(self) -> list[gatt.Service]:
        services = [
            gatt.Service(
                gatt.GATT_DEVICE_INFORMATION_SERVICE,
                [
                    characteristic(0x2A29, _PROPS.READ, self.MANUFACTURER.encode()),
                    characteristic(0x2A24, _PROPS.READ, self.MODEL.encode()),
                ],
            )
        ]
        if self.battery_level is not None:
            self._battery_char = gatt.Characteristic(
                gatt.GATT_BATTERY_LEVEL_CHARACTERISTIC,
                _PROPS.READ | _PROPS.NOTIFY,
                _READABLE,
                gatt.CharacteristicValue(
                    read=lambda _c: bytes((self.battery_level or 0,)), write=refuse_write
                ),
            )
            services.append(gatt.Service(gatt.GATT_BATTERY_SERVICE, [self._battery_char]))
        if self.current_time_mode != "none":
            writable = self.current_time_mode == "write"
            services.append(
                gatt.Service(
                    gatt.GATT_CURRENT_TIME_SERVICE,
                    [
                        gatt.Characteristic(
                            gatt.GATT_CURRENT_TIME_CHARACTERISTIC,
                            _PROPS.READ | _PROPS.NOTIFY | (_PROPS.WRITE if writable else 0),
                            _READ_WRITE if writable else _READABLE,
                            gatt.CharacteristicValue(
                                read=lambda _c: encoding.current_time(self.clock.now()),
                                write=self._write_current_time if writable else refuse_write,
                            ),
                        )
                    ],
                )
            )
        return services

    def _write_current_time(self, _connection: Connection, value: bytes) -> None:
        if len(value) != 10:
            raise att.ATT_Error(att.ErrorCode.INVALID_ATTRIBUTE_LENGTH)
        moment = encoding.parse_current_time(value)
        if moment is None:
            raise att.ATT_Error(att.ErrorCode.OUT_OF_RANGE)
        self.clock.set_to(moment)
        logger.debug("%s: clock set to %s", self.name, moment.isoformat())


def refuse_write(_connection: Connection, _value: bytes) -> None:
    """What a device answers to a write on a value it does not let anyone write."""
    raise att.ATT_Error(att.ErrorCode.WRITE_NOT_PERMITTED)


def refuse_read(_connection: Connection) -> bytes:
    """What a device answers to a read of a value that can only be notified or written."""
    raise att.ATT_Error(att.ErrorCode.READ_NOT_PERMITTED)


def characteristic(
    uuid16: int, properties: gatt.Characteristic.Properties, value: bytes = b""
) -> gatt.Characteristic[bytes]:
    """A characteristic with a 16-bit SIG UUID and a fixed value; writes are refused."""
    return gatt.Characteristic(
        core.UUID.from_16_bits(uuid16),
        properties,
        _READABLE,
        gatt.CharacteristicValue(
            read=(lambda _c: value) if properties & _PROPS.READ else refuse_read, write=refuse_write
        ),
    )

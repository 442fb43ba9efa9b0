"""A bleak backend over Google's bumble: the real ``BleakClient``/``BleakScanner`` facade, no radio.

bleak picks a platform backend (BlueZ, CoreBluetooth, WinRT…) unless it is handed one:
``BleakScanner(..., backend=adapter.scanner_backend)`` and
``BleakClient(..., backend=adapter.client_backend)``. :class:`BumbleAdapter` is the gateway's
adapter on a :class:`~devices.ble.emulated.radio.VirtualRadio`; the two backend classes it hands
out implement bleak's backend contracts (``bleak.backends.scanner.BaseBleakScanner`` and
``bleak.backends.client.BaseBleakClient``) with bumble's GAP and GATT client: scanning via
advertisement reports, connect, service discovery, read, write, notify/indicate (bumble writes the
CCCD and confirms indications) and disconnect callbacks.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import struct
import uuid as uuidlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar, cast

from bleak.args import SizedBuffer
from bleak.assigned_numbers import CHARACTERISTIC_PROPERTIES, CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError, BleakGATTProtocolError
from bumble import att, core
from bumble.core import AdvertisingData
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.gatt_client import AttributeProxy, CharacteristicProxy, ServiceProxy
from bumble.hci import Address

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_AD = AdvertisingData.Type
_REQUESTED_MTU = 247
_DISCONNECT_REASON_LOCAL_HOST = 0x16  # HCI "connection terminated by local host"


@dataclass(frozen=True, slots=True)
class BumbleDeviceDetails:
    """What ``BLEDevice.details`` holds for a device seen on the virtual radio."""

    address: Address


def uuid_to_str(value: core.UUID) -> str:
    """bumble UUID -> bleak's normalised form (lower-case 128-bit string)."""
    return str(uuidlib.UUID(bytes=bytes(reversed(value.to_bytes(force_128=True)))))


def parse_advertisement(adv: Advertisement) -> tuple[str | None, list[str], dict[int, bytes],
                                                     dict[str, bytes], int | None]:
    """Pull name, service UUIDs, manufacturer data, service data and TX power out of AD structures.

    Malformed structures (wrong lengths) are skipped rather than trusted.
    """
    name: str | None = None
    uuids: list[str] = []
    manufacturer: dict[int, bytes] = {}
    service_data: dict[str, bytes] = {}
    tx_power: int | None = None
    for ad_type, value in adv.data.ad_structures:
        if ad_type in (_AD.COMPLETE_LOCAL_NAME, _AD.SHORTENED_LOCAL_NAME):
            if name is None or ad_type == _AD.COMPLETE_LOCAL_NAME:
                name = value.decode("utf-8", errors="replace")
        elif ad_type in (_AD.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
                         _AD.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS):
            uuids.extend(_uuid_list(value, 2))
        elif ad_type in (_AD.INCOMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS,
                         _AD.COMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS):
            uuids.extend(_uuid_list(value, 4))
        elif ad_type in (_AD.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
                         _AD.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS):
            uuids.extend(_uuid_list(value, 16))
        elif ad_type == _AD.MANUFACTURER_SPECIFIC_DATA and len(value) >= 2:
            manufacturer[int.from_bytes(value[:2], "little")] = bytes(value[2:])
        elif ad_type == _AD.SERVICE_DATA_16_BIT_UUID and len(value) >= 2:
            service_data[uuid_to_str(core.UUID.from_bytes(value[:2]))] = bytes(value[2:])
        elif ad_type == _AD.TX_POWER_LEVEL and len(value) == 1:
            tx_power = struct.unpack("<b", value)[0]
    return name, list(dict.fromkeys(uuids)), manufacturer, service_data, tx_power


def _uuid_list(value: bytes, size: int) -> list[str]:
    usable = len(value) - len(value) % size
    return [uuid_to_str(core.UUID.from_bytes(value[i:i + size])) for i in range(0, usable, size)]


class BumbleAdapter:
    """The gateway's Bluetooth adapter on a virtual radio (a bumble device in the central role)."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self.connect_lock = asyncio.Lock()
        self._scanners: set[BumbleScanner] = set()
        self._scan_lock = asyncio.Lock()
        self._seen: dict[str, Address] = {}
        self.device.on(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        self.scanner_backend: type[BumbleScanner] = type(
            "BumbleScanner", (BumbleScanner,), {"adapter": self}
        )
        self.client_backend: type[BumbleClient] = type(
            "BumbleClient", (BumbleClient,), {"adapter": self}
        )

    async def power_on(self) -> None:
        await self.device.power_on()

    async def power_off(self) -> None:
        """Switch the adapter off, as ``bluetoothctl power off`` would: links drop, scans fail."""
        for connection in list(self.device.connections.values()):
            await connection.disconnect(_DISCONNECT_REASON_LOCAL_HOST)
        self._scanners.clear()
        await self.device.power_off()

    def require_power(self) -> None:
        if not self.device.powered_on:
            raise BleakError("the Bluetooth adapter is not powered (org.bluez.Error.NotReady)")

    def resolve(self, address: str) -> Address:
        """The bumble address for a textual address (typed as last advertised)."""
        seen = self._seen.get(address.upper())
        return seen if seen is not None else Address(address.upper())

    async def add_scanner(self, scanner: BumbleScanner) -> None:
        self.require_power()
        async with self._scan_lock:
            self._scanners.add(scanner)
            if not self.device.is_scanning:
                await self.device.start_scanning(filter_duplicates=False)

    async def remove_scanner(self, scanner: BumbleScanner) -> None:
        async with self._scan_lock:
            self._scanners.discard(scanner)
            if not self._scanners and self.device.is_scanning:
                await self.device.stop_scanning()

    def _on_advertisement(self, adv: Advertisement) -> None:
        self._seen[adv.address.to_string(with_type_qualifier=False)] = adv.address
        for scanner in list(self._scanners):
            scanner.on_advertisement(adv)


class BumbleScanner(BaseBleakScanner):
    """bleak scanner backend fed by the bumble adapter's advertisement reports."""

    adapter: ClassVar[BumbleAdapter]

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: Literal["active", "passive"] = "active",
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._scanning_mode = scanning_mode

    async def start(self) -> None:
        self.seen_devices = {}
        await self.adapter.add_scanner(self)

    async def stop(self) -> None:
        await self.adapter.remove_scanner(self)

    def on_advertisement(self, adv: Advertisement) -> None:
        name, uuids, manufacturer, service_data, tx_power = parse_advertisement(adv)
        if not self.is_allowed_uuid(uuids):
            return
        address = adv.address.to_string(with_type_qualifier=False)
        data = AdvertisementData(
            local_name=name,
            manufacturer_data=manufacturer,
            service_data=service_data,
            service_uuids=uuids,
            tx_power=tx_power,
            rssi=adv.rssi,
            platform_data=(adv,),
        )
        device = self.create_or_update_device(
            address, address, name, BumbleDeviceDetails(adv.address), data
        )
        self.call_detection_callbacks(device, data)


class BumbleClient(BaseBleakClient):
    """bleak client backend: one LE connection from the bumble adapter to a peripheral."""

    adapter: ClassVar[BumbleAdapter]

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None = None,
        timeout: float = 10.0,
        services: set[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        details = (
            address_or_ble_device.details if isinstance(address_or_ble_device, BLEDevice) else None
        )
        self._peer_address = (
            details.address if isinstance(details, BumbleDeviceDetails)
            else self.adapter.resolve(self.address)
        )
        self._name = (
            address_or_ble_device.name if isinstance(address_or_ble_device, BLEDevice) else None
        ) or self.address
        self._service_filter = services
        self._connection: Connection | None = None
        self._lost: asyncio.Future[int] | None = None
        self._subscribers: dict[int, Callable[[bytes], None]] = {}

    @property
    def name(self) -> str:
        return self._name

    @property
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection is not None else att.ATT_DEFAULT_MTU

    @property
    def is_connected(self) -> bool:
        return self._connection is not None and self._lost is not None and not self._lost.done()

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if self.is_connected:
            return
        timeout = float(kwargs.get("timeout", self._timeout))
        if pair:
            logger.debug("pairing is not emulated; connecting without it")
        self.adapter.require_power()
        async with self.adapter.connect_lock:
            try:
                connection = await self.adapter.device.connect(self._peer_address, timeout=timeout)
            except core.TimeoutError as exc:
                raise TimeoutError(f"no connection to {self.address} within {timeout:g}s") from exc
            except core.ConnectionError as exc:
                raise BleakError(f"connection to {self.address} failed: {exc}") from exc
        loop = asyncio.get_running_loop()
        self._lost = loop.create_future()
        self._connection = connection
        connection.on(Connection.EVENT_DISCONNECTION, self._on_disconnection)
        try:
            peer = Peer(connection)
            await self._call("MTU exchange", peer.request_mtu(_REQUESTED_MTU))
            self.services = await self._discover(peer)
        except BaseException:
            await self._drop()
            raise
        logger.debug("connected to %s (%d services)", self.address, len(self.services.services))

    async def _discover(self, peer: Peer) -> BleakGATTServiceCollection:
        collection = BleakGATTServiceCollection()
        found: list[ServiceProxy] = await self._call("service discovery", peer.discover_services())
        for proxy in found:
            service_uuid = uuid_to_str(proxy.uuid)
            if self._service_filter is not None and service_uuid not in self._service_filter:
                continue
            service = BleakGATTService(proxy, proxy.handle, service_uuid)
            collection.add_service(service)
            chars: list[CharacteristicProxy[bytes]] = await self._call(
                "characteristic discovery", peer.discover_characteristics(service=proxy)
            )
            for char_proxy in chars:
                characteristic = BleakGATTCharacteristic(
                    char_proxy,
                    char_proxy.handle,
                    uuid_to_str(char_proxy.uuid),
                    _property_names(int(char_proxy.properties)),
                    lambda: self.mtu_size - 3,
                    service,
                )
                collection.add_characteristic(characteristic)
                await self._call(
                    "descriptor discovery", peer.discover_descriptors(characteristic=char_proxy)
                )
                for desc in char_proxy.descriptors:
                    collection.add_descriptor(
                        BleakGATTDescriptor(desc, desc.handle, uuid_to_str(desc.type), characteristic)
                    )
        return collection

    async def disconnect(self) -> None:
        await self._drop()

    async def _drop(self) -> None:
        connection, lost = self._connection, self._lost
        if connection is None or lost is None or lost.done():
            return
        try:
            await connection.disconnect(_DISCONNECT_REASON_LOCAL_HOST)
        except core.BaseBumbleError as exc:
            logger.debug("disconnect from %s: %s", self.address, exc)
        if not lost.done():
            await asyncio.wait_for(asyncio.shield(lost), timeout=self._timeout)

    def _on_disconnection(self, reason: int) -> None:
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(reason)
        self._subscribers.clear()
        logger.debug("%s disconnected (reason 0x%02X)", self.address, reason)
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise BleakError("pairing is not supported on the virtual radio")

    async def unpair(self) -> None:
        raise BleakError("pairing is not supported on the virtual radio")

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        proxy: AttributeProxy[bytes] = characteristic.obj
        return bytearray(await self._call(f"read {characteristic.uuid}", proxy.read_value()))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        proxy: AttributeProxy[bytes] = descriptor.obj
        return bytearray(await self._call(f"read descriptor {descriptor.uuid}", proxy.read_value()))

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        proxy: AttributeProxy[bytes] = characteristic.obj
        await self._call(
            f"write {characteristic.uuid}", proxy.write_value(bytes(data), with_response=response)
        )

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: SizedBuffer) -> None:
        proxy: AttributeProxy[bytes] = descriptor.obj
        await self._call(
            f"write descriptor {descriptor.uuid}", proxy.write_value(bytes(data), with_response=True)
        )

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        proxy: CharacteristicProxy[bytes] = characteristic.obj

        def deliver(value: bytes) -> None:
            callback(bytearray(value))

        self._subscribers[characteristic.handle] = deliver
        await self._call(f"subscribe {characteristic.uuid}", proxy.subscribe(deliver))

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        deliver = self._subscribers.pop(characteristic.handle, None)
        await self._call(f"unsubscribe {characteristic.uuid}", proxy.unsubscribe(deliver))

    async def _call(self, what: str, operation: Awaitable[_T]) -> _T:
        """Run one GATT operation, failing fast (as BleakError) when the link goes down under it."""
        lost = self._lost
        if self._connection is None or lost is None or lost.done():
            if inspect.iscoroutine(operation):
                operation.close()
            raise BleakError(f"{what}: not connected")
        task = asyncio.ensure_future(operation)
        try:
            await asyncio.wait(
                {task, cast("asyncio.Future[Any]", lost)}, return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not task.done():
            task.cancel()
            raise BleakError(f"{what}: device disconnected")
        if task.cancelled():
            raise BleakError(f"{what}: device disconnected")
        try:
            return task.result()
        except att.ATT_Error as exc:
            raise BleakGATTProtocolError(exc.error_code) from exc
        except core.TimeoutError as exc:
            raise TimeoutError(f"{what}: no response from {self.address}") from exc
        except core.BaseBumbleError as exc:
            raise BleakError(f"{what}: {exc}") from exc


def _property_names(properties: int) -> list[CharacteristicPropertyName]:
    return [name for bit, name in CHARACTERISTIC_PROPERTIES.items() if properties & bit]

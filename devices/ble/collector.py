"""The collector's Bluetooth adapter over bleak: the only production module that imports bleak.

:class:`BleakCentral` implements :class:`~devices.ble.collector_api.BleCentral`: it scans with
``BleakScanner`` for the health services and connects with bleak-retry-connector's
``establish_connection`` (retries with backoff on the transient errors real adapters produce).
By default bleak picks the platform backend (BlueZ over D-Bus on a Linux home hub); tests and the
demo pass the bumble backend classes instead, so the code under test is this code, unchanged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakError, BleakGATTProtocolError
from bleak_retry_connector import establish_connection

from devices.ble.collector_api import (
    HEALTH_SERVICE_UUIDS,
    BleError,
    CharacteristicInfo,
    GattError,
    Sighting,
)

logger = logging.getLogger(__name__)

DEFAULT_CONNECT_ATTEMPTS = 3


class BleakCentral:
    """The gateway's adapter through bleak (BlueZ on Linux unless backends are given)."""

    def __init__(
        self,
        *,
        adapter: str | None = None,
        scanner_backend: type[BaseBleakScanner] | None = None,
        client_backend: type[BaseBleakClient] | None = None,
        service_uuids: tuple[str, ...] = HEALTH_SERVICE_UUIDS,
        connect_attempts: int = DEFAULT_CONNECT_ATTEMPTS,
    ) -> None:
        self._adapter = adapter
        self._scanner_backend = scanner_backend
        self._client_backend = client_backend
        self._service_uuids = list(service_uuids)
        self._connect_attempts = connect_attempts
        self._devices: dict[str, BLEDevice] = {}

    def _bluez(self) -> dict[str, Any]:
        return {"bluez": {"adapter": self._adapter}} if self._adapter else {}

    @asynccontextmanager
    async def scan(self, on_sighting: Callable[[Sighting], None]) -> AsyncIterator[None]:
        def detected(device: BLEDevice, adv: AdvertisementData) -> None:
            address = device.address.upper()
            self._devices[address] = device
            on_sighting(
                Sighting(address, adv.local_name or device.name, tuple(adv.service_uuids), adv.rssi)
            )

        scanner = BleakScanner(
            detected, self._service_uuids, backend=self._scanner_backend, **self._bluez()
        )
        try:
            await scanner.start()
        except (BleakError, OSError) as exc:
            raise BleError(
                f"cannot start scanning (is BlueZ running and reachable over D-Bus?): {exc}"
            ) from exc
        try:
            yield
        finally:
            try:
                await scanner.stop()
            except (BleakError, OSError) as exc:
                logger.warning("stopping the scan failed: %s", exc)

    async def connect(self, address: str, *, timeout: float) -> BleakLink:
        device = self._devices.get(address.upper())
        if device is None:
            raise BleError(f"{address} has not been seen advertising")
        link = BleakLink(address.upper())
        try:
            async with asyncio.timeout(timeout):
                client = await establish_connection(
                    BleakClient,
                    device,
                    device.name or address,
                    disconnected_callback=link.on_disconnected,
                    max_attempts=self._connect_attempts,
                    backend=self._client_backend,
                    **self._bluez(),
                )
        except (BleakError, TimeoutError, OSError, EOFError) as exc:
            raise BleError(f"cannot connect to {address}: {exc}") from exc
        link.attach(client)
        return link


class BleakLink:
    """A connected device through ``BleakClient``; bleak's errors become :class:`BleError`."""

    def __init__(self, address: str) -> None:
        self._address = address
        self._client: BleakClient | None = None
        self._closed = asyncio.Event()
        self._characteristics: dict[str, CharacteristicInfo] = {}

    def attach(self, client: BleakClient) -> None:
        self._client = client
        for service in client.services:
            for char in service.characteristics:
                self._characteristics.setdefault(
                    char.uuid,
                    CharacteristicInfo(char.uuid, service.uuid, frozenset(char.properties)),
                )
        if not client.is_connected:
            self._closed.set()

    def on_disconnected(self, _client: BleakClient) -> None:
        self._closed.set()

    @property
    def address(self) -> str:
        return self._address

    @property
    def characteristics(self) -> Mapping[str, CharacteristicInfo]:
        return self._characteristics

    @property
    def is_connected(self) -> bool:
        return self._client is not None and self._client.is_connected and not self._closed.is_set()

    def _require(self) -> BleakClient:
        if self._client is None or not self.is_connected:
            raise BleError(f"{self._address} is not connected")
        return self._client

    async def read(self, uuid: str) -> bytes:
        client = self._require()
        try:
            return bytes(await client.read_gatt_char(uuid))
        except BleakGATTProtocolError as exc:
            raise GattError(f"read {uuid}", int(exc.code)) from exc
        except (BleakError, TimeoutError, OSError, EOFError) as exc:
            raise BleError(f"read {uuid} from {self._address}: {exc}") from exc

    async def write(self, uuid: str, data: bytes, *, response: bool = True) -> None:
        client = self._require()
        try:
            await client.write_gatt_char(uuid, data, response=response)
        except BleakGATTProtocolError as exc:
            raise GattError(f"write {uuid}", int(exc.code)) from exc
        except (BleakError, TimeoutError, OSError, EOFError) as exc:
            raise BleError(f"write {uuid} to {self._address}: {exc}") from exc

    async def subscribe(self, uuid: str, callback: Callable[[bytes], None]) -> None:
        client = self._require()
        try:
            await client.start_notify(uuid, lambda _char, data: callback(bytes(data)))
        except BleakGATTProtocolError as exc:
            raise GattError(f"subscribe {uuid}", int(exc.code)) from exc
        except (BleakError, TimeoutError, OSError, EOFError) as exc:
            raise BleError(f"subscribe {uuid} on {self._address}: {exc}") from exc

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def disconnect(self) -> None:
        client = self._client
        if client is None:
            return
        try:
            await client.disconnect()
        except (BleakError, TimeoutError, OSError, EOFError) as exc:
            logger.debug("disconnect from %s: %s", self._address, exc)
        finally:
            self._closed.set()

"""The bleak backend over bumble, driven through bleak's public facade (BleakScanner, BleakClient,
bleak-retry-connector) against emulated peripherals on a virtual radio."""

from __future__ import annotations

import asyncio

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.exc import BleakError, BleakGATTProtocolError
from bleak_retry_connector import establish_connection
from bumble.device import Advertisement
from bumble.hci import Address

from devices.ble import decode
from devices.ble.emulated.bleak_backend import BumbleAdapter, parse_advertisement
from devices.ble.emulated.live_devices import HeartRateStrap, Thermometer
from devices.ble.emulated.record_devices import GlucoseMeter
from tests.support.emulated_ble import on_air, run, until, uuid16

STRAP = "F1:00:00:00:00:01"
THERMOMETER = "F1:00:00:00:00:04"
METER = "F1:00:00:00:00:06"
HEART_RATE_SERVICE = "0000180d-0000-1000-8000-00805f9b34fb"
CCCD = "00002902-0000-1000-8000-00805f9b34fb"


async def find(adapter: BumbleAdapter, address: str) -> BLEDevice:
    device = await BleakScanner.find_device_by_address(
        address, timeout=5, backend=adapter.scanner_backend
    )
    assert device is not None
    return device


def test_scanning_filters_by_service_and_reports_advertisement_data() -> None:
    strap, thermometer = HeartRateStrap(STRAP, "Strap 1"), Thermometer(THERMOMETER, "Thermo 1")

    async def scenario() -> None:
        async with on_air(strap, thermometer) as adapter:
            seen: dict[str, tuple[str | None, list[str], int]] = {}

            def detected(device: BLEDevice, adv: object) -> None:
                seen[device.address] = (adv.local_name, adv.service_uuids, adv.rssi)  # type: ignore[attr-defined]

            async with BleakScanner(detected, [HEART_RATE_SERVICE], backend=adapter.scanner_backend):
                await until(lambda: STRAP in seen, what="strap advertisement")
                await asyncio.sleep(0.3)
            assert set(seen) == {STRAP}
            name, uuids, rssi = seen[STRAP]
            assert name == "Strap 1" and uuids == [HEART_RATE_SERVICE] and isinstance(rssi, int)

    run(scenario())


def test_connect_discover_read_write_notify_and_indicate() -> None:
    strap = HeartRateStrap(STRAP, "Strap")
    thermometer = Thermometer(THERMOMETER, "Thermo", current_time="read")

    async def scenario() -> None:
        async with on_air(strap, thermometer) as adapter:
            async with BleakClient(await find(adapter, STRAP), backend=adapter.client_backend) as client:
                assert client.is_connected and client.mtu_size == 247
                hrm = client.services.get_characteristic(uuid16(0x2A37))
                assert hrm is not None and hrm.properties == ["notify"]
                assert hrm.service_uuid == HEART_RATE_SERVICE
                assert [d.uuid for d in hrm.descriptors] == [CCCD]
                assert await client.read_gatt_char(uuid16(0x2A38)) == bytearray(b"\x01")
                assert await client.read_gatt_char(uuid16(0x2A19)) == bytearray(b"\x5a")  # 90 %
                values: asyncio.Queue[bytes] = asyncio.Queue()
                await client.start_notify(hrm, lambda _c, data: values.put_nowait(bytes(data)))
                await until(lambda: strap.subscribed(strap.measurement), what="CCCD written")
                assert await client.read_gatt_descriptor(hrm.descriptors[0].handle) == b"\x01\x00"
                await strap.send_heart_rate(72)
                assert await asyncio.wait_for(values.get(), 2) == bytes.fromhex("0648")
                await client.stop_notify(hrm)
                await until(lambda: not strap.subscribed(strap.measurement), what="unsubscribed")

            device = await find(adapter, THERMOMETER)
            async with BleakClient(device, backend=adapter.client_backend) as client:
                indications: asyncio.Queue[bytes] = asyncio.Queue()
                await client.start_notify(uuid16(0x2A1C), lambda _c, d: indications.put_nowait(bytes(d)))
                await until(lambda: thermometer.subscribed(thermometer.measurement), what="CCCD")
                assert await thermometer.measure(36.6)  # True: the indication was confirmed
                value = await asyncio.wait_for(indications.get(), 2)
                [reading] = decode(uuid16(0x2A1C), value).measurements
                assert (reading.metric, reading.value, reading.unit) == ("body_temperature", 36.6, "Cel")
                with pytest.raises(BleakGATTProtocolError) as refused:
                    await client.write_gatt_char(uuid16(0x2A2B), b"\x00" * 10, response=True)
                assert refused.value.code == 0x03  # write not permitted: read-only clock

    run(scenario())


def test_att_errors_surface_as_gatt_protocol_errors() -> None:
    meter = GlucoseMeter(METER, "Meter", current_time="write")

    async def scenario() -> None:
        async with on_air(meter) as adapter:
            async with BleakClient(await find(adapter, METER), backend=adapter.client_backend) as client:
                with pytest.raises(BleakGATTProtocolError) as short:
                    await client.write_gatt_char(uuid16(0x2A2B), b"\x01", response=True)
                assert short.value.code == 0x0D  # invalid attribute value length
                with pytest.raises(BleakGATTProtocolError) as no_cccd:
                    await client.write_gatt_char(uuid16(0x2A52), b"\x01\x01", response=True)
                assert no_cccd.value.code == 0xFD  # RACP indications not enabled
                assert client.is_connected

    run(scenario())


def test_link_loss_calls_back_and_fails_operations_in_flight() -> None:
    strap = HeartRateStrap(STRAP, "Strap")

    async def scenario() -> None:
        async with on_air(strap) as adapter:
            lost: list[BleakClient] = []
            client = await establish_connection(
                BleakClient, await find(adapter, STRAP), "strap",
                disconnected_callback=lost.append, backend=adapter.client_backend,
            )
            assert client.is_connected
            read = asyncio.create_task(client.read_gatt_char(uuid16(0x2A38)))
            await strap.drop_link()
            with pytest.raises(BleakError):  # never a bare CancelledError
                await read
            await until(lambda: bool(lost), what="disconnected callback")
            assert lost == [client] and not client.is_connected
            with pytest.raises(BleakError):
                await client.read_gatt_char(uuid16(0x2A38))
            await client.disconnect()  # already down: a no-op

            await until(lambda: not strap.connected, what="device side down")
            again = await establish_connection(
                BleakClient, await find(adapter, STRAP), "strap", backend=adapter.client_backend
            )
            assert again.is_connected and strap.connections_made == 2
            await again.disconnect()
            assert not again.is_connected and lost == [client]

    run(scenario())


def test_connecting_to_a_silent_address_times_out_and_frees_the_adapter() -> None:
    strap = HeartRateStrap(STRAP, "Strap")

    async def scenario() -> None:
        async with on_air(strap) as adapter:
            client = BleakClient("F1:00:00:00:00:99", backend=adapter.client_backend, timeout=0.3)
            with pytest.raises(TimeoutError):
                await client.connect()
            async with BleakClient(await find(adapter, STRAP), backend=adapter.client_backend) as ok:
                assert ok.is_connected

    run(scenario())


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # complete name, 16-bit UUIDs 180D + 1810, manufacturer 0x0059 data, TX power -4
        (
            bytes.fromhex("0609414243444505030d18101805ff5900010202 0afc".replace(" ", "")),
            ("ABCDE", [HEART_RATE_SERVICE, "00001810-0000-1000-8000-00805f9b34fb"],
             {0x59: b"\x01\x02"}, {}, -4),
        ),
        # odd-length 16-bit list (last octet ignored), 1-octet manufacturer data (too short)
        (bytes.fromhex("04020d18aa02ff01"), (None, [HEART_RATE_SERVICE], {}, {}, None)),
        # service data for 0x1809 and a two-octet TX power field (malformed, skipped)
        (bytes.fromhex("0516091801020" + "3" + "0a0102"),
         (None, [], {}, {"00001809-0000-1000-8000-00805f9b34fb": b"\x01\x02"}, None)),
        (b"", (None, [], {}, {}, None)),
    ],
)
def test_advertisement_parsing_tolerates_malformed_structures(
    data: bytes, expected: tuple[object, ...]
) -> None:
    adv = Advertisement(Address("F1:00:00:00:00:01"), data_bytes=data)
    assert parse_advertisement(adv) == expected

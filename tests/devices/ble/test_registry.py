"""The decode() entry point: UUID forms, buffer types, unsupported and hostile input."""

from __future__ import annotations

from typing import Any

import pytest

from devices.ble import UnsupportedCharacteristic, decode, full_uuid, is_supported, short_uuid
from devices.ble.characteristics import DECODERS, SERVICES
from devices.ble.collector_api import HEALTH_SERVICE_UUIDS, HEALTH_SERVICES
from devices.ble.collector_session import LIVE
from devices.errors import MalformedPayload

ZEPHYR_HR = b"\x06\x5a"  # zephyr subsys/bluetooth/services/hrs.c: flags 0x06, 90 bpm


@pytest.mark.parametrize(
    "characteristic",
    [
        "2a37",
        "2A37",
        "0x2a37",
        "0X2A37",
        " 2a37\n",
        "00002a37",
        "00002a37-0000-1000-8000-00805f9b34fb",
        "00002A37-0000-1000-8000-00805F9B34FB",
        0x2A37,
    ],
)
def test_every_uuid_form_reaches_the_same_decoder(characteristic: str | int) -> None:
    result = decode(characteristic, ZEPHYR_HR)
    assert result.characteristic == "2a37"
    assert result.fields["heart_rate_bpm"] == 90


@pytest.mark.parametrize(
    "characteristic",
    [
        "2a38",  # a real characteristic we do not decode
        "ffff",
        0x2A38,
        "",
        "2a3",
        "2a377",
        "0x",
        "zzzz",
        "00002a37-0000-1000-8000-00805f9b34fc",  # not the Bluetooth base UUID
        "12342a37-0000-1000-8000-00805f9b34fb",  # 32-bit UUID outside 16-bit range
        "2a37" * 100,
        -1,
        0x10000,
        True,
        None,
        2.5,
        b"2a37",
        ["2a37"],
    ],
)
def test_unsupported_or_hostile_characteristics(characteristic: Any) -> None:
    with pytest.raises(UnsupportedCharacteristic) as caught:
        decode(characteristic, ZEPHYR_HR)
    assert isinstance(caught.value, MalformedPayload)
    assert not is_supported(characteristic)


@pytest.mark.parametrize(
    "buffer", [bytearray(ZEPHYR_HR), memoryview(ZEPHYR_HR), memoryview(b"\x00" + ZEPHYR_HR)[1:]]
)
def test_bytes_like_values(buffer: Any) -> None:
    assert decode("2a37", buffer) == decode("2a37", ZEPHYR_HR)


@pytest.mark.parametrize("value", ["065a", None, 6, [6, 90]])
def test_non_bytes_values_are_malformed(value: Any) -> None:
    with pytest.raises(MalformedPayload):
        decode("2a37", value)


def test_uuid_helpers() -> None:
    assert full_uuid(0x2A37) == "00002a37-0000-1000-8000-00805f9b34fb"
    assert short_uuid("00002a52-0000-1000-8000-00805f9b34fb") == 0x2A52


def test_every_supported_characteristic_refuses_empty_and_oversized_values() -> None:
    for short in DECODERS:
        with pytest.raises(MalformedPayload):
            decode(short, b"")
        with pytest.raises(MalformedPayload):
            decode(short, b"\x00" * 513)


def test_the_issue_list_is_covered() -> None:
    required = {0x2A37, 0x2A35, 0x2A36, 0x2A1C, 0x2A18, 0x2A34, 0x2A5E, 0x2A5F}
    required |= {0x2A9D, 0x2A9C, 0x2AA7, 0x2A08, 0x2A2B, 0x2A52}
    assert required <= set(DECODERS)


def test_the_collector_lists_come_from_the_table_unchanged() -> None:
    # Pinned literally: they decide what the gateway scans for and subscribes to, in this order.
    assert LIVE == ("2a37", "2a35", "2a1c", "2a5e", "2a5f", "2a9d", "2a9c")
    assert list(HEALTH_SERVICES.items()) == [
        (0x180D, "heart_rate"),
        (0x1810, "blood_pressure"),
        (0x1809, "health_thermometer"),
        (0x1822, "pulse_oximeter"),
        (0x181D, "weight_scale"),
        (0x181B, "body_composition"),
        (0x1808, "glucose"),
        (0x181F, "continuous_glucose_monitoring"),
    ]
    assert HEALTH_SERVICE_UUIDS == tuple(
        f"0000{u}-0000-1000-8000-00805f9b34fb"
        for u in ("180d", "1810", "1809", "1822", "181d", "181b", "1808", "181f")
    )


def test_every_characteristic_names_a_known_service_and_every_service_has_one() -> None:
    services = {c.service for c in DECODERS.values()}
    assert services - {None} == set(SERVICES)
    assert all(DECODERS[int(short, 16)].service is not None for short in LIVE)

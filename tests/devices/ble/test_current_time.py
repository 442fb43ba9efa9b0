"""Date Time 0x2A08, Current Time 0x2A2B and Battery Level 0x2A19."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devices.ble import DecodeResult, decode
from devices.ble.date_time import encode_current_time, encode_date_time, parse_date_time
from devices.errors import EncodeError, MalformedPayload


def test_nordic_date_time() -> None:
    # Nordic Android-BLE-Library@4a86e6c DateTimeDataCallbackTest.java#L43-L67
    assert decode("2a08", bytes.fromhex("e20704110f3300")) == DecodeResult(
        "2a08",
        "date_time",
        {
            "timestamp": "2018-04-17T15:51:00",
            "year": 2018,
            "month": 4,
            "day": 17,
            "hours": 15,
            "minutes": 51,
            "seconds": 0,
        },
        (),
    )


@pytest.mark.parametrize(
    "hex_value",
    [
        "00000000000000",  # all unknown
        "e2070d110f3300",  # month 13
        "e20704110f3c00",  # minute 60
        "e2070411180000",  # hour 24
        "e207021e0a0000",  # 30 February
    ],
)
def test_unusable_dates_have_no_timestamp(hex_value: str) -> None:
    fields = decode("2a08", bytes.fromhex(hex_value)).fields
    assert fields["timestamp"] is None


def test_year_before_1582_is_not_a_date() -> None:
    assert parse_date_time(bytes.fromhex("e80304110f3300")).value is None  # year 1000


def test_current_time_round_trip() -> None:
    # constructed: 2024-03-05 07:30:15.5 (a Tuesday), manual update
    octets = bytes.fromhex("e8070305071e0f028001")
    assert encode_current_time(datetime(2024, 3, 5, 7, 30, 15, 500000), adjust_reason=1) == octets
    assert decode("2a2b", octets) == DecodeResult(
        "2a2b",
        "current_time",
        {
            "timestamp": "2024-03-05T07:30:15",
            "year": 2024,
            "month": 3,
            "day": 5,
            "hours": 7,
            "minutes": 30,
            "seconds": 15,
            "day_of_week": 2,
            "day_of_week_name": "tuesday",
            "fractions256": 128,
            "adjust_reason": {"raw": 1, "flags": ["manual_time_update"]},
        },
        (),
    )


def test_encode_uses_wall_clock_fields_only() -> None:
    assert encode_date_time(datetime(2018, 4, 17, 15, 51, tzinfo=UTC)) == bytes.fromhex("e20704110f3300")
    with pytest.raises(EncodeError):
        encode_date_time(datetime(1, 1, 1))
    with pytest.raises(EncodeError):
        encode_current_time(datetime(2024, 1, 1), adjust_reason=256)


@pytest.mark.parametrize(
    ("characteristic", "hex_value"), [("2a08", "e20704110f33"), ("2a2b", "e20704110f330002")]
)
def test_truncated_time_is_refused(characteristic: str, hex_value: str) -> None:
    with pytest.raises(MalformedPayload):
        decode(characteristic, bytes.fromhex(hex_value))


def test_battery_level() -> None:
    assert decode("2a19", b"\x64") == DecodeResult(
        "2a19", "battery_level", {"battery_level_percent": 100}, ()
    )
    for bad in (b"", b"\x65", b"\xff"):
        with pytest.raises(MalformedPayload):
            decode("2a19", bad)

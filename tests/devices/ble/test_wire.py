"""Measurements become contract reading objects that the service's own parser accepts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from devices.ble import decode, wire_reading, wire_readings
from devices.errors import InvalidReading
from devices.message import parse_message, parse_reading

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
AT = datetime(2026, 11, 25, 8, 30, tzinfo=UTC)


def test_blood_pressure_in_kpa_travels_as_sent_and_parses_to_the_same_canonical_value() -> None:
    # Nordic BloodPressureMeasurementDataCallbackTest.java#L112-L160 (kPa, cuff loose)
    result = decode("2a35", bytes.fromhex("15bdf00b009ff03c001200"))
    readings = wire_readings(result.measurements, AT)
    assert readings[0] == {
        "metric": "systolic_bp",
        "value": 18.9,
        "unit": "kPa",
        "measured_at": "2026-11-25T08:30:00+00:00",
        "status": ["cuff_too_loose", "pulse_rate_below_lower_limit"],
        "source": "ble",
    }
    for m, wire in zip(result.measurements, readings, strict=True):
        parsed = parse_reading(wire, device_id="F0F1F2F3F4F5", now=NOW)
        assert parsed.value == pytest.approx(m.value, rel=1e-9)
        assert parsed.unit == m.unit
        assert parsed.original_unit == m.original_unit
        assert parsed.status == m.status


@pytest.mark.parametrize(
    ("characteristic", "hex_value"),
    [
        ("2a37", "065a"),  # zephyr hrs.c
        ("2a1c", "01da0300ff"),  # nguyenquocanhz sig.test.ts: 98.6 degF
        ("2a18", "030a00e807010f081e00000064b011"),  # 100e-5 kg/L
        ("2a18", "060b00e807010f0c000037c011"),  # 55e-4 mol/L
        ("2a5e", "0062004800"),  # 98 %, 72 bpm
        ("2a9d", "0f543de7070c190e1e2d03f500a802"),  # 157 lb (RonanB96)
        ("2aa7", "060078000500"),  # CGM 120 mg/dL
    ],
)
def test_every_kind_of_reading_is_accepted_by_the_service_parser(characteristic: str, hex_value: str) -> None:
    result = decode(characteristic, bytes.fromhex(hex_value))
    assert result.measurements
    message = {"readings": wire_readings(result.measurements, AT), "gateway_id": "home-hub-17"}
    parsed = parse_message(message, device_id="F0F1F2F3F4F5", now=NOW)
    assert parsed.rejections == []
    for (_, reading), m in zip(parsed.readings, result.measurements, strict=True):
        assert (reading.metric, reading.unit) == (m.metric, m.unit)
        assert reading.value == pytest.approx(m.value, rel=1e-9)
        assert reading.measured_at == AT


def test_device_time_travels_when_given() -> None:
    (m,) = decode("2a37", b"\x06\x5a").measurements
    device_time = datetime(2026, 11, 25, 9, 29, tzinfo=timezone(timedelta(hours=1)))
    wire = wire_reading(m, AT, device_time=device_time, source="ble")
    assert wire["device_time"] == "2026-11-25T09:29:00+01:00"
    assert parse_reading(wire, device_id="X", now=NOW).device_time == device_time


def test_naive_times_are_refused() -> None:
    (m,) = decode("2a37", b"\x06\x5a").measurements
    with pytest.raises(InvalidReading):
        wire_reading(m, datetime(2026, 11, 25, 8, 30))
    with pytest.raises(InvalidReading):
        wire_reading(m, AT, device_time=datetime(2026, 11, 25, 8, 30))

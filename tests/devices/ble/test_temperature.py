"""Temperature Measurement 0x2A1C and Intermediate Temperature 0x2A1E."""

from __future__ import annotations

from datetime import datetime

import pytest

from devices.ble import DecodeResult, Measurement, decode
from devices.errors import MalformedPayload

NORDIC_FULL = bytes.fromhex("06b00e00fedc070c050b321b04")


def test_nordic_full_measurement() -> None:
    # Nordic Android-BLE-Library@4a86e6c TemperatureMeasurementDataCallbackTest.java#L43-L75
    at = datetime(2012, 12, 5, 11, 50, 27)
    assert decode("2a1c", NORDIC_FULL) == DecodeResult(
        "2a1c",
        "temperature_measurement",
        {
            "temperature": 37.6,
            "temperature_unit": "Cel",
            "timestamp": "2012-12-05T11:50:27",
            "temperature_type": 4,
            "temperature_type_name": "finger",
        },
        (Measurement("body_temperature", 37.6, "Cel", at, 37.6, "Cel"),),
    )


def test_fahrenheit_is_kept_in_fields_and_converted_in_the_reading() -> None:
    # nguyenquocanhz/SoTuyenNghiaVu@0edac08 sig.test.ts#L152-L156: 986e-1 degF
    assert decode("2a1c", bytes.fromhex("01da0300ff")) == DecodeResult(
        "2a1c",
        "temperature_measurement",
        {
            "temperature": 98.6,
            "temperature_unit": "degF",
            "timestamp": None,
            "temperature_type": None,
            "temperature_type_name": None,
        },
        (Measurement("body_temperature", 37.0, "Cel", None, 98.6, "[degF]"),),
    )


def test_nan_temperature_gives_no_reading() -> None:
    # nguyenquocanhz sig.test.ts#L193-L198: FLOAT NaN 0x007FFFFF
    result = decode("2a1c", bytes.fromhex("00ffff7f00"))
    assert result.fields["temperature"] == "NaN"
    assert result.measurements == ()


def test_intermediate_temperature_has_the_same_fields_and_no_reading() -> None:
    result = decode("2a1e", NORDIC_FULL)
    assert result.name == "intermediate_temperature"
    assert result.fields == decode("2a1c", NORDIC_FULL).fields
    assert result.measurements == ()


def test_reserved_temperature_type() -> None:
    # constructed: type 0x0A is reserved
    assert decode("2a1c", bytes.fromhex("04b00e00fe0a")).fields["temperature_type_name"] == "reserved"


@pytest.mark.parametrize(
    ("hex_value", "offset"),
    [("00b00e00", 1), ("02b00e00fedc070c", 5), ("04b00e00fe", 5)],
)
def test_truncated_temperature_is_refused(hex_value: str, offset: int) -> None:
    with pytest.raises(MalformedPayload) as caught:
        decode("2a1c", bytes.fromhex(hex_value))
    assert caught.value.offset == offset

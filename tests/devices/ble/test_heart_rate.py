"""Heart Rate Measurement 0x2A37: whole decoded objects from byte literals."""

from __future__ import annotations

import pytest

from devices.ble import DecodeResult, Measurement, decode
from devices.errors import MalformedPayload

HR = "2a37"


def hr_fields(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "heart_rate_bpm": 0,
        "heart_rate_format": "uint8",
        "sensor_contact": "not_supported",
        "energy_expended_kj": None,
        "rr_intervals_raw_1_1024s": None,
        "rr_intervals_s": None,
    }
    fields.update(overrides)
    return fields


def heart_rate(bpm: float) -> Measurement:
    return Measurement("heart_rate", bpm, "/min", None, bpm, "/min")


def test_zephyr_sample_sensor() -> None:
    # zephyrproject-rtos/zephyr subsys/bluetooth/services/hrs.c#L73-L74: flags 0x06, uint8 HR
    assert decode(HR, b"\x06\x5a") == DecodeResult(
        "2a37",
        "heart_rate_measurement",
        hr_fields(heart_rate_bpm=90, sensor_contact="detected"),
        (heart_rate(90.0),),
    )


def test_nordic_energy_and_rr() -> None:
    # Nordic Android-BLE-Library@4a86e6c HeartRateMeasurementDataCallbackTest.java#L89-L104
    assert decode(HR, b"\x1e\x55\x32\x00\x21\x00") == DecodeResult(
        "2a37",
        "heart_rate_measurement",
        hr_fields(
            heart_rate_bpm=85,
            sensor_contact="detected",
            energy_expended_kj=50,
            rr_intervals_raw_1_1024s=[33],
            rr_intervals_s=[33 / 1024],
        ),
        (heart_rate(85.0),),
    )


def test_bumble_uint16_three_rr() -> None:
    # google/bumble@f534657 tests/heart_rate_service_test.py#L27-L51, serialised by its encoder
    assert decode(HR, bytes.fromhex("1fe8030200000c00100014")) == DecodeResult(
        "2a37",
        "heart_rate_measurement",
        hr_fields(
            heart_rate_bpm=1000,
            heart_rate_format="uint16",
            sensor_contact="detected",
            energy_expended_kj=2,
            rr_intervals_raw_1_1024s=[3072, 4096, 5120],
            rr_intervals_s=[3.0, 4.0, 5.0],
        ),
        (heart_rate(1000.0),),
    )


def test_contact_supported_but_not_detected_gives_no_reading() -> None:
    # constructed: flags 0x04 = contact feature supported, contact not detected
    result = decode(HR, b"\x04\x48")
    assert result.fields == hr_fields(heart_rate_bpm=72, sensor_contact="not_detected")
    assert result.measurements == ()


def test_zero_bpm_gives_no_reading() -> None:
    # constructed: straps send 0 before they lock on
    result = decode(HR, b"\x06\x00")
    assert result.fields["heart_rate_bpm"] == 0
    assert result.measurements == ()


def test_trailing_octets_are_tolerated_without_rr() -> None:
    # constructed: a newer revision may append fields; the known ones decode the same
    assert decode(HR, b"\x06\x5a\xaa\xbb") == decode(HR, b"\x06\x5a")


@pytest.mark.parametrize(
    ("octets", "offset"),
    [
        (b"", 0),  # empty value
        (b"\x00", 1),  # flags only
        (b"\x01\x50", 1),  # uint16 flag, one HR octet
        (b"\x08\x50\x01", 2),  # energy flag, one energy octet
        (b"\x10\x50", 2),  # RR flag, no RR
        (b"\x10\x50\x00\x04\x01", 4),  # RR flag, odd RR octets
        (b"\x18\x50\x01\x00\x01", 4),  # energy then one stray octet as RR
    ],
)
def test_truncated_values_are_refused(octets: bytes, offset: int) -> None:
    with pytest.raises(MalformedPayload) as caught:
        decode(HR, octets)
    assert caught.value.offset == offset


def test_oversized_value_is_refused() -> None:
    with pytest.raises(MalformedPayload):
        decode(HR, b"\x10\x50" + b"\x00\x04" * 256)


def test_largest_attribute_decodes() -> None:
    result = decode(HR, b"\x10\x50" + b"\x00\x04" * 255)
    assert result.fields["rr_intervals_s"] == [1.0] * 255

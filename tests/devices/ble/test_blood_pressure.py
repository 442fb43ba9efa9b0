"""Blood Pressure Measurement 0x2A35 and Intermediate Cuff Pressure 0x2A36."""

from __future__ import annotations

from datetime import datetime
from typing import cast

import pytest

from devices.ble import DecodeResult, Measurement, decode
from devices.errors import MalformedPayload


def approx(value: float) -> float:
    """pytest.approx typed as a float, so it can stand in a Measurement."""
    return cast(float, pytest.approx(value))


BPM = "00002a35-0000-1000-8000-00805f9b34fb"
ICP = "2a36"
MMHG_PER_KPA = 7.500615758  # literal, not imported: the test pins the conversion


def test_full_measurement_with_date_pulse_user_and_status() -> None:
    # constructed from the SIG XML (sputnikdev/bluetooth-gatt-parser@82940cb
    # org.bluetooth.characteristic.blood_pressure_measurement.xml): 121/79/93 mmHg,
    # 2024-03-05 07:30:00, pulse 130, unknown user, pulse rate over the upper limit
    octets = bytes.fromhex("1e79004f005d00e8070305071e008200ff0800")
    at = datetime(2024, 3, 5, 7, 30)
    status = ("pulse_rate_exceeds_upper_limit",)
    assert decode(BPM, octets) == DecodeResult(
        "2a35",
        "blood_pressure_measurement",
        {
            "unit": "mmHg",
            "systolic": 121.0,
            "diastolic": 79.0,
            "mean_arterial_pressure": 93.0,
            "timestamp": "2024-03-05T07:30:00",
            "pulse_rate_bpm": 130.0,
            "user_id": 255,
            "measurement_status": {
                "raw": 8,
                "body_movement_detected": False,
                "cuff_too_loose": False,
                "irregular_pulse_detected": False,
                "pulse_rate_range": "exceeds_upper_limit",
                "improper_measurement_position": False,
            },
        },
        (
            Measurement("systolic_bp", 121.0, "mm[Hg]", at, 121.0, "mm[Hg]", status, 255),
            Measurement("diastolic_bp", 79.0, "mm[Hg]", at, 79.0, "mm[Hg]", status, 255),
            Measurement("mean_arterial_pressure", 93.0, "mm[Hg]", at, 93.0, "mm[Hg]", status, 255),
            Measurement("heart_rate", 130.0, "/min", at, 130.0, "/min", status, 255),
        ),
    )


def test_kpa_is_converted_and_flags_travel() -> None:
    # Nordic Android-BLE-Library@4a86e6c BloodPressureMeasurementDataCallbackTest.java#L112-L160
    result = decode(BPM, bytes.fromhex("15bdf00b009ff03c001200"))
    status = ("cuff_too_loose", "pulse_rate_below_lower_limit")
    assert result.measurements == (
        Measurement("systolic_bp", approx(18.9 * MMHG_PER_KPA), "mm[Hg]", None, 18.9, "kPa", status),
        Measurement("diastolic_bp", approx(11.0 * MMHG_PER_KPA), "mm[Hg]", None, 11.0, "kPa", status),
        Measurement(
            "mean_arterial_pressure",
            approx(15.9 * MMHG_PER_KPA),
            "mm[Hg]",
            None,
            15.9,
            "kPa",
            status,
        ),
        Measurement("heart_rate", 60.0, "/min", None, 60.0, "/min", status),
    )


def test_unknown_year_keeps_raw_time_and_flags_the_readings() -> None:
    # Nordic BloodPressureMeasurementDataCallbackTest.java#L42-L110: year 0 = not known
    result = decode(BPM, bytes.fromhex("1e8a00580078000000041114293b3c00012700"))
    assert result.fields["timestamp"] is None
    assert result.fields["timestamp_fields"] == {
        "year": 0,
        "month": 4,
        "day": 17,
        "hours": 20,
        "minutes": 41,
        "seconds": 59,
    }
    expected_status = (
        "device_time_unknown",
        "body_movement",
        "cuff_too_loose",
        "irregular_pulse",
        "improper_measurement_position",
    )
    assert [m.metric for m in result.measurements] == [
        "systolic_bp",
        "diastolic_bp",
        "mean_arterial_pressure",
        "heart_rate",
    ]
    for m in result.measurements:
        assert m.measured_at is None
        assert m.status == expected_status
        assert m.user_id == 1


def test_map_nan_is_left_out_and_never_2047() -> None:
    # constructed (vector bpm-map-nan): MAP SFLOAT 0x07FF = NaN
    result = decode(BPM, bytes.fromhex("0078005000ff07"))
    assert result.fields["mean_arterial_pressure"] == "NaN"
    assert [(m.metric, m.value) for m in result.measurements] == [
        ("systolic_bp", 120.0),
        ("diastolic_bp", 80.0),
    ]


@pytest.mark.parametrize(
    "octets",
    [
        bytes.fromhex("00ff0750005d00"),  # systolic NaN
        bytes.fromhex("0078000008" + "5d00"),  # diastolic NRes
    ],
)
def test_panel_is_all_or_nothing(octets: bytes) -> None:
    assert decode(BPM, octets).measurements == ()


def test_pulse_nan_gives_no_heart_rate() -> None:
    # constructed: flags 0x04 pulse present, pulse SFLOAT NaN
    result = decode(BPM, bytes.fromhex("0478005000ff07ff07"))
    assert result.fields["pulse_rate_bpm"] == "NaN"
    assert [m.metric for m in result.measurements] == ["systolic_bp", "diastolic_bp"]


def test_impossible_date_is_unknown_not_an_error() -> None:
    # constructed: 2023-02-30 does not exist
    result = decode(BPM, bytes.fromhex("0278005000ff07e707021e0a0000"))
    assert result.fields["timestamp"] is None
    assert result.fields["timestamp_fields"]["day"] == 30
    assert result.measurements[0].status == ("device_time_unknown",)


@pytest.mark.parametrize(
    ("octets", "offset"),
    [
        (bytes.fromhex("010203040506"), 5),  # Nordic #L200-L223: 6 octets < 7
        (bytes.fromhex("0278005000ff07e70702"), 7),  # time stamp cut
        (bytes.fromhex("0478005000ff07ff"), 7),  # pulse cut
        (bytes.fromhex("0878005000ff07"), 7),  # user id missing
        (bytes.fromhex("1078005000ff0701"), 7),  # status cut
    ],
)
def test_truncated_bpm_is_refused(octets: bytes, offset: int) -> None:
    with pytest.raises(MalformedPayload) as caught:
        decode(BPM, octets)
    assert caught.value.offset == offset


def test_intermediate_cuff_pressure_has_fields_and_no_reading() -> None:
    # Nordic IntermediateCuffPressureDataCallbackTest.java#L113-L157
    assert decode(ICP, bytes.fromhex("156ff0000000003c001200")) == DecodeResult(
        "2a36",
        "intermediate_cuff_pressure",
        {
            "unit": "kPa",
            "cuff_pressure": 11.1,
            "timestamp": None,
            "pulse_rate_bpm": 60.0,
            "user_id": None,
            "measurement_status": {
                "raw": 18,
                "body_movement_detected": False,
                "cuff_too_loose": True,
                "irregular_pulse_detected": False,
                "pulse_rate_range": "below_lower_limit",
                "improper_measurement_position": False,
            },
        },
        (),
    )


def test_intermediate_cuff_pressure_needs_the_unused_slots() -> None:
    with pytest.raises(MalformedPayload):
        decode(ICP, bytes.fromhex("006f00ff07"))

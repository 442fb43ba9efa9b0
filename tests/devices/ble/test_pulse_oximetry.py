"""PLX Spot-Check 0x2A5E and PLX Continuous 0x2A5F (their flag tables differ)."""

from __future__ import annotations

from datetime import datetime

import pytest

from devices.ble import DecodeResult, Measurement, decode
from devices.errors import MalformedPayload


def test_spot_check_minimal() -> None:
    # constructed from sputnikdev plx_spot_check_measurement.xml (vector plx-spot-minimal)
    assert decode("2a5e", bytes.fromhex("0062004800")) == DecodeResult(
        "2a5e",
        "plx_spot_check_measurement",
        {
            "spo2_percent": 98.0,
            "pulse_rate_bpm": 72.0,
            "timestamp": None,
            "measurement_status": None,
            "device_and_sensor_status": None,
            "pulse_amplitude_index_percent": None,
            "device_clock_not_set": False,
        },
        (
            Measurement("spo2", 98.0, "%", None, 98.0, "%"),
            Measurement("heart_rate", 72.0, "/min", None, 72.0, "/min"),
        ),
    )


def test_spot_check_every_field() -> None:
    # constructed: flags 0x0F; 97 %, 72 bpm; 2024-03-05 07:30:00; status 0x4080 (validated,
    # questionable); device/sensor 0x000020 (low perfusion); PAI 53e-1 %
    octets = bytes.fromhex("0f61004800e8070305071e00804020000035f0")
    at = datetime(2024, 3, 5, 7, 30)
    status = ("validated_data", "questionable_measurement", "low_perfusion")
    assert decode("2a5e", octets) == DecodeResult(
        "2a5e",
        "plx_spot_check_measurement",
        {
            "spo2_percent": 97.0,
            "pulse_rate_bpm": 72.0,
            "timestamp": "2024-03-05T07:30:00",
            "measurement_status": {
                "raw": 0x4080,
                "flags": ["validated_data", "questionable_measurement"],
            },
            "device_and_sensor_status": {"raw": 0x20, "flags": ["low_perfusion"]},
            "pulse_amplitude_index_percent": 5.3,
            "device_clock_not_set": False,
        },
        (
            Measurement("spo2", 97.0, "%", at, 97.0, "%", status),
            Measurement("heart_rate", 72.0, "/min", at, 72.0, "/min", status),
        ),
    )


def test_clock_not_set_keeps_the_device_time_and_says_so() -> None:
    # constructed: flags 0x11 = timestamp + device clock not set (the gateway corrects it)
    result = decode("2a5e", bytes.fromhex("1161004800d0070101000500"))
    assert result.fields["device_clock_not_set"] is True
    for m in result.measurements:
        assert m.measured_at == datetime(2000, 1, 1, 0, 5)
        assert m.status == ("device_clock_not_set",)


def test_pulse_nan_keeps_spo2_only() -> None:
    # constructed (vector plx-spot-pulse-nan)
    result = decode("2a5e", bytes.fromhex("006100ff07"))
    assert result.fields["pulse_rate_bpm"] == "NaN"
    assert [m.metric for m in result.measurements] == ["spo2"]


@pytest.mark.parametrize(
    ("status_hex", "flag"),
    [
        ("0080", "invalid_measurement"),
        ("0020", "measurement_unavailable"),
        ("0004", "data_for_demonstration"),
        ("0008", "data_for_testing"),
    ],
)
def test_values_the_device_disowns_give_no_reading(status_hex: str, flag: str) -> None:
    result = decode("2a5e", bytes.fromhex("0261004800" + status_hex))
    assert result.fields["measurement_status"]["flags"] == [flag]
    assert result.measurements == ()


def test_sensor_off_the_patient_gives_no_reading() -> None:
    # constructed: device and sensor status 0x008000 = sensor disconnected
    assert decode("2a5e", bytes.fromhex("0461004800008000")).measurements == ()


def test_biased_exponent_trap() -> None:
    # RonanB96/bluetooth-sig-python@27bdb3d asserts 98 %/72 bpm for these octets; they are
    # 98e-8 and 72e-8 (exponent -8). The reading keeps the true value; the service's
    # plausibility check refuses it.
    result = decode("2a5e", bytes.fromhex("0062804880"))
    assert result.fields["spo2_percent"] == pytest.approx(9.8e-7)
    assert result.fields["pulse_rate_bpm"] == pytest.approx(7.2e-7)


def test_continuous_normal_only() -> None:
    # StanfordSpezi/SpeziBluetooth@c52a637 PLXTests.swift#L27
    assert decode("2a5f", bytes.fromhex("0064005a00")) == DecodeResult(
        "2a5f",
        "plx_continuous_measurement",
        {
            "spo2_percent": 100.0,
            "pulse_rate_bpm": 90.0,
            "spo2_fast_percent": None,
            "pulse_rate_fast_bpm": None,
            "spo2_slow_percent": None,
            "pulse_rate_slow_bpm": None,
            "measurement_status": None,
            "device_and_sensor_status": None,
            "pulse_amplitude_index_percent": None,
        },
        (
            Measurement("spo2", 100.0, "%", None, 100.0, "%"),
            Measurement("heart_rate", 90.0, "/min", None, 90.0, "/min"),
        ),
    )


def test_continuous_every_field_uses_its_own_flag_table() -> None:
    # constructed: flags 0x1F; normal 97/72, fast 96/75, slow 98/70, status 0x0080,
    # device/sensor 0, PAI 53e-1
    octets = bytes.fromhex("1f610048006000" + "4b00" + "62004600" + "8000" + "000000" + "35f0")
    result = decode("2a5f", octets)
    assert result.fields == {
        "spo2_percent": 97.0,
        "pulse_rate_bpm": 72.0,
        "spo2_fast_percent": 96.0,
        "pulse_rate_fast_bpm": 75.0,
        "spo2_slow_percent": 98.0,
        "pulse_rate_slow_bpm": 70.0,
        "measurement_status": {"raw": 0x80, "flags": ["validated_data"]},
        "device_and_sensor_status": {"raw": 0, "flags": []},
        "pulse_amplitude_index_percent": 5.3,
    }
    assert [(m.metric, m.value, m.status) for m in result.measurements] == [
        ("spo2", 97.0, ("validated_data",)),
        ("heart_rate", 72.0, ("validated_data",)),
    ]


@pytest.mark.parametrize(
    ("characteristic", "hex_value"),
    [
        ("2a5e", "0facf3bef5e807"),  # truncation of SpeziBluetooth PLXTests.swift#L79
        ("2a5e", "00620048"),
        ("2a5e", "046100480000"),
        ("2a5e", "086100480035"),
        ("2a5f", "0164005a006000"),
        ("2a5f", "0c64005a00800000"),
    ],
)
def test_truncated_plx_is_refused(characteristic: str, hex_value: str) -> None:
    with pytest.raises(MalformedPayload):
        decode(characteristic, bytes.fromhex(hex_value))

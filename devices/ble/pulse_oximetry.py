"""PLX Spot-Check Measurement (0x2A5E, indicate) and PLX Continuous Measurement (0x2A5F, notify).

Spot-check: Flags u8 (b0 Timestamp, b1 Measurement Status, b2 Device and Sensor Status, b3
Pulse Amplitude Index, b4 device clock not set) · SpO2 SFLOAT % · PR SFLOAT bpm · [Timestamp,
Date Time] · [Measurement Status 16-bit] · [Device and Sensor Status 24-bit] · [PAI SFLOAT %].

Continuous: Flags u8 (b0 SpO2PR-Fast, b1 SpO2PR-Slow, b2 Measurement Status, b3 Device and
Sensor Status, b4 PAI) · SpO2 · PR (normal) · [SpO2 · PR fast] · [SpO2 · PR slow] ·
[Measurement Status] · [Device and Sensor Status] · [PAI]. The two flag tables differ.

Readings: ``spo2`` and ``heart_rate`` (from the normal SpO2/PR pair) with the status flags. A
value the device marks invalid, unavailable, demonstration or test data, or taken with the
sensor off the patient, yields no reading; the fields keep it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from devices.ble.ieee11073 import Number, SpecialValue, json_value
from devices.ble.reader import Reader
from devices.ble.result import DecodeResult, Measurement, measurement, status_field, time_stamp

SPOT_CHECK_CHARACTERISTIC: Final = "2a5e"
CONTINUOUS_CHARACTERISTIC: Final = "2a5f"
MEASUREMENT_STATUS_FLAGS: Final = (
    (0x0020, "measurement_ongoing"),
    (0x0040, "early_estimated_data"),
    (0x0080, "validated_data"),
    (0x0100, "fully_qualified_data"),
    (0x0200, "data_from_measurement_storage"),
    (0x0400, "data_for_demonstration"),
    (0x0800, "data_for_testing"),
    (0x1000, "calibration_ongoing"),
    (0x2000, "measurement_unavailable"),
    (0x4000, "questionable_measurement"),
    (0x8000, "invalid_measurement"),
)
DEVICE_SENSOR_STATUS_FLAGS: Final = (
    (0x0001, "extended_display_update_ongoing"),
    (0x0002, "equipment_malfunction"),
    (0x0004, "signal_processing_irregularity"),
    (0x0008, "inadequate_signal"),
    (0x0010, "poor_signal"),
    (0x0020, "low_perfusion"),
    (0x0040, "erratic_signal"),
    (0x0080, "non_pulsatile_signal"),
    (0x0100, "questionable_pulse"),
    (0x0200, "signal_analysis_ongoing"),
    (0x0400, "sensor_interference"),
    (0x0800, "sensor_unconnected_to_user"),
    (0x1000, "unknown_sensor_connected"),
    (0x2000, "sensor_displaced"),
    (0x4000, "sensor_malfunctioning"),
    (0x8000, "sensor_disconnected"),
)
# Status flags under which the numbers are not a measurement of the patient.
NOT_A_PATIENT_MEASUREMENT: Final = frozenset(
    {
        "invalid_measurement",
        "measurement_unavailable",
        "data_for_demonstration",
        "data_for_testing",
        "sensor_unconnected_to_user",
        "sensor_disconnected",
    }
)


def _tail(
    r: Reader, fields: dict[str, Any], has_measurement: bool, has_device: bool, has_pai: bool
) -> list[str]:
    """The optional fields both characteristics end with: [Measurement Status] · [Device and
    Sensor Status] · [Pulse Amplitude Index]. Returns the status flags they set."""
    status: list[str] = []
    measurement_status = r.u16("Measurement Status") if has_measurement else None
    fields["measurement_status"] = status_field(measurement_status, MEASUREMENT_STATUS_FLAGS, status)
    device_status = r.u24("Device and Sensor Status") if has_device else None
    fields["device_and_sensor_status"] = status_field(device_status, DEVICE_SENSOR_STATUS_FLAGS, status)
    pai = r.sfloat("Pulse Amplitude Index") if has_pai else None
    fields["pulse_amplitude_index_percent"] = None if pai is None else json_value(pai)
    return status


def _readings(
    spo2: Number, pulse: Number, measured_at: datetime | None, status: list[str]
) -> tuple[Measurement, ...]:
    if NOT_A_PATIENT_MEASUREMENT.intersection(status):
        return ()
    readings: list[Measurement] = []
    if not isinstance(spo2, SpecialValue):
        readings.append(measurement("spo2", spo2, "%", measured_at, status))
    if not isinstance(pulse, SpecialValue):
        readings.append(measurement("heart_rate", pulse, "/min", measured_at, status))
    return tuple(readings)


def decode_plx_spot_check(data: bytes) -> DecodeResult:
    r = Reader(data, "PLX Spot-Check Measurement")
    flags = r.u8("Flags")
    spo2 = r.sfloat("SpO2")
    pulse = r.sfloat("PR")
    fields: dict[str, Any] = {"spo2_percent": json_value(spo2), "pulse_rate_bpm": json_value(pulse)}
    early: list[str] = []
    measured_at = time_stamp(r, bool(flags & 0x01), "Timestamp", fields, early)
    clock_not_set = bool(flags & 0x10)
    if clock_not_set:
        early.append("device_clock_not_set")
    status = early + _tail(r, fields, bool(flags & 0x02), bool(flags & 0x04), bool(flags & 0x08))
    fields["device_clock_not_set"] = clock_not_set
    r.end()
    readings = _readings(spo2, pulse, measured_at, status)
    return DecodeResult(SPOT_CHECK_CHARACTERISTIC, "plx_spot_check_measurement", fields, readings)


def decode_plx_continuous(data: bytes) -> DecodeResult:
    r = Reader(data, "PLX Continuous Measurement")
    flags = r.u8("Flags")
    spo2 = r.sfloat("SpO2PR-Normal SpO2")
    pulse = r.sfloat("SpO2PR-Normal PR")
    fields: dict[str, Any] = {"spo2_percent": json_value(spo2), "pulse_rate_bpm": json_value(pulse)}
    for bit, speed in ((0x01, "fast"), (0x02, "slow")):
        if flags & bit:
            fields[f"spo2_{speed}_percent"] = json_value(r.sfloat(f"SpO2PR-{speed} SpO2"))
            fields[f"pulse_rate_{speed}_bpm"] = json_value(r.sfloat(f"SpO2PR-{speed} PR"))
        else:
            fields[f"spo2_{speed}_percent"] = None
            fields[f"pulse_rate_{speed}_bpm"] = None
    status = _tail(r, fields, bool(flags & 0x04), bool(flags & 0x08), bool(flags & 0x10))
    r.end()
    readings = _readings(spo2, pulse, None, status)
    return DecodeResult(CONTINUOUS_CHARACTERISTIC, "plx_continuous_measurement", fields, readings)

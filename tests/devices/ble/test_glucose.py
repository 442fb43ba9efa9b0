"""Glucose Measurement 0x2A18 and Glucose Measurement Context 0x2A34."""

from __future__ import annotations

from datetime import datetime
from typing import cast

import pytest

from devices.ble import DecodeResult, Measurement, decode
from devices.errors import MalformedPayload


def approx(value: float) -> float:
    """pytest.approx typed as a float, so it can stand in a Measurement."""
    return cast(float, pytest.approx(value))


def test_kg_per_litre_record() -> None:
    # constructed from sputnikdev/bluetooth-gatt-parser@82940cb glucose_measurement.xml:
    # seq 10, 2024-01-15 08:30:00, offset 0, 100e-5 kg/L, capillary whole blood, finger
    at = datetime(2024, 1, 15, 8, 30)
    assert decode("2a18", bytes.fromhex("030a00e807010f081e00000064b011")) == DecodeResult(
        "2a18",
        "glucose_measurement",
        {
            "sequence_number": 10,
            "base_time": "2024-01-15T08:30:00",
            "time_offset_min": 0,
            "timestamp": "2024-01-15T08:30:00",
            "glucose_concentration": 0.001,
            "glucose_unit": "kg/L",
            "sample_type": 1,
            "sample_type_name": "capillary_whole_blood",
            "sample_location": 1,
            "sample_location_name": "finger",
            "sensor_status_annunciation": None,
            "context_information_follows": False,
        },
        (Measurement("blood_glucose", 100.0, "mg/dL", at, 0.001, "kg/L"),),
    )


def test_mol_per_litre_offset_over_midnight_and_status() -> None:
    # constructed (vector glucose-molL-offset-crosses-midnight-status): 7.8 mmol/L, battery low
    result = decode("2a18", bytes.fromhex("0f0201e7070b05172d0a3c004ec0210100"))
    assert result.fields["timestamp"] == "2023-11-06T00:45:10"
    assert result.fields["sensor_status_annunciation"] == {"raw": 1, "flags": ["device_battery_low"]}
    assert result.measurements == (
        Measurement(
            "blood_glucose",
            approx(0.0078 * 18016),
            "mg/dL",
            datetime(2023, 11, 6, 0, 45, 10),
            0.0078,
            "mol/L",
            ("device_battery_low",),
        ),
    )


def test_negative_time_offset() -> None:
    # constructed: offset 0xFFE2 = -30 min (sint16)
    result = decode("2a18", bytes.fromhex("010a00e807010f081e00e2ff"))
    assert result.fields["time_offset_min"] == -30
    assert result.fields["timestamp"] == "2024-01-15T08:00:00"
    assert result.measurements == ()  # no concentration (flag bit 1 clear)


def test_control_solution_is_not_a_patient_reading() -> None:
    # constructed: Type-Sample Location 0x1A = type 10 (control solution), location 1
    result = decode("2a18", bytes.fromhex("020a00e807010f081e0064b01a"))
    assert result.fields["sample_type_name"] == "control_solution"
    assert result.measurements == ()
    # and location 4 (control solution) with a blood type
    assert decode("2a18", bytes.fromhex("020a00e807010f081e0064b041")).measurements == ()


def test_unknown_base_time() -> None:
    # constructed: year 0 = not known
    result = decode("2a18", bytes.fromhex("020a000000010f081e0064b011"))
    assert result.fields["base_time"] is None
    assert result.fields["base_time_fields"]["year"] == 0
    assert result.fields["timestamp"] is None
    (reading,) = result.measurements
    assert reading.measured_at is None
    assert reading.status == ("device_time_unknown",)


def test_offset_past_year_9999_has_no_time() -> None:
    # constructed: 9999-12-31 23:59:00 + 32767 min
    result = decode("2a18", bytes.fromhex("0301000f270c1f173b00ff7f64b011"))
    assert result.fields["base_time"] == "9999-12-31T23:59:00"
    assert result.fields["timestamp"] is None
    assert result.measurements[0].measured_at is None


def test_every_sensor_status_flag_is_named() -> None:
    result = decode("2a18", bytes.fromhex("080a00e807010f081e00ff0f"))
    assert result.fields["sensor_status_annunciation"]["flags"] == [
        "device_battery_low",
        "sensor_malfunction",
        "sample_size_insufficient",
        "strip_insertion_error",
        "strip_type_incorrect",
        "result_above_device_range",
        "result_below_device_range",
        "sensor_temperature_too_high",
        "sensor_temperature_too_low",
        "sensor_read_interrupted",
        "general_device_fault",
        "time_fault",
    ]


@pytest.mark.parametrize(
    ("hex_value", "offset"),
    [
        ("0001000000", 3),  # 5 octets < 10
        ("010a00e807010f081e00e2", 10),  # offset cut
        ("020a00e807010f081e0064b0", 12),  # type-location missing
        ("080a00e807010f081e0001", 10),  # status cut
    ],
)
def test_truncated_glucose_is_refused(hex_value: str, offset: int) -> None:
    with pytest.raises(MalformedPayload) as caught:
        decode("2a18", bytes.fromhex(hex_value))
    assert caught.value.offset == offset


def test_context_carbohydrate_meal_tester_health() -> None:
    # constructed from sputnikdev glucose_measurement_context.xml (vector gctx-carb-meal-tester)
    assert decode("2a34", bytes.fromhex("070a000132d00151")) == DecodeResult(
        "2a34",
        "glucose_measurement_context",
        {
            "sequence_number": 10,
            "extended_flags": None,
            "carbohydrate_id": 1,
            "carbohydrate_name": "breakfast",
            "carbohydrate_kg": 0.05,
            "meal": 1,
            "meal_name": "preprandial",
            "tester": 1,
            "tester_name": "self",
            "health": 5,
            "health_name": "no_health_issues",
            "exercise_duration_s": None,
            "exercise_duration_overrun": False,
            "exercise_intensity_percent": None,
            "medication_id": None,
            "medication_name": None,
            "medication": None,
            "medication_unit": None,
            "hba1c_percent": None,
        },
        (),
    )


def test_context_exercise_medication_hba1c() -> None:
    # constructed: flags 0x78 = exercise, medication, litres, HbA1c; 3600 s at 50 %;
    # rapid-acting insulin 5e-3 L; HbA1c 6.5 %
    result = decode("2a34", bytes.fromhex("780200100e3201 05d0 41f0".replace(" ", "")))
    assert {k: v for k, v in result.fields.items() if v is not None} == {
        "sequence_number": 2,
        "exercise_duration_s": 3600,
        "exercise_duration_overrun": False,
        "exercise_intensity_percent": 50,
        "medication_id": 1,
        "medication_name": "rapid_acting_insulin",
        "medication": 0.005,
        "medication_unit": "L",
        "hba1c_percent": 6.5,
    }


@pytest.mark.parametrize("hex_value", ["01", "810100", "010a0001", "080a00100e"])
def test_truncated_context_is_refused(hex_value: str) -> None:
    with pytest.raises(MalformedPayload):
        decode("2a34", bytes.fromhex(hex_value))

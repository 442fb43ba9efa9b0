"""Weight Measurement 0x2A9D and Body Composition Measurement 0x2A9C."""

from __future__ import annotations

from datetime import datetime
from typing import cast

import pytest

from devices.ble import DecodeResult, Measurement, decode
from devices.errors import MalformedPayload


def approx(value: float) -> float:
    """pytest.approx typed as a float, so it can stand in a Measurement."""
    return cast(float, pytest.approx(value))


KG_PER_LB = 0.45359237  # literal: the test pins the conversion


def test_si_weight_with_timestamp() -> None:
    # RonanB96/bluetooth-sig-python@27bdb3d test_weight_measurement.py#L103-L131
    at = datetime(2023, 12, 25, 14, 30, 45)
    assert decode("2a9d", bytes.fromhex("02b036e7070c190e1e2d")) == DecodeResult(
        "2a9d",
        "weight_measurement",
        {
            "unit_system": "SI",
            "weight_kg": 70.0,
            "measurement_unsuccessful": False,
            "timestamp": "2023-12-25T14:30:45",
            "user_id": None,
            "bmi": None,
            "height_m": None,
        },
        (Measurement("body_weight", 70.0, "kg", at, 70.0, "kg"),),
    )


def test_imperial_weight_user_bmi_height() -> None:
    # RonanB96 test_weight_measurement.py#L185-L223: 157 lb (0.01 lb), height 68.0 in (0.1 in)
    at = datetime(2023, 12, 25, 14, 30, 45)
    assert decode("2a9d", bytes.fromhex("0f543de7070c190e1e2d03f500a802")) == DecodeResult(
        "2a9d",
        "weight_measurement",
        {
            "unit_system": "imperial",
            "weight_lb": 157.0,
            "measurement_unsuccessful": False,
            "timestamp": "2023-12-25T14:30:45",
            "user_id": 3,
            "bmi": 24.5,
            "height_in": 68.0,
        },
        (
            Measurement(
                "body_weight",
                approx(157.0 * KG_PER_LB),
                "kg",
                at,
                157.0,
                "[lb_av]",
                (),
                3,
            ),
        ),
    )


def test_weight_resolution_is_fixed_by_the_field() -> None:
    # Pitfalls 2 and 3 of ble-gatt-formats.md: 0.005 kg and 0.01 lb whatever the Weight Scale
    # Feature says (StanfordSpezi/SpeziBluetooth scales by the feature resolution: wrong)
    assert decode("2a9d", bytes.fromhex("00b036")).fields["weight_kg"] == 70.0
    assert decode("2a9d", bytes.fromhex("01483c")).fields["weight_lb"] == 154.32
    assert decode("2a9d", bytes.fromhex("000100")).fields["weight_kg"] == 0.005
    assert decode("2a9d", bytes.fromhex("010100")).fields["weight_lb"] == 0.01


def test_unsuccessful_weight_gives_no_reading() -> None:
    # constructed: weight 0xFFFF = measurement unsuccessful, user 2
    result = decode("2a9d", bytes.fromhex("04ffff02"))
    assert result.fields["weight_kg"] is None
    assert result.fields["measurement_unsuccessful"] is True
    assert result.fields["user_id"] == 2
    assert result.measurements == ()


@pytest.mark.parametrize(
    ("hex_value", "offset"),
    [
        ("0001", 1),  # RonanB96 #L230-L235: 2 octets < 3
        ("02b036e7070c19", 3),  # time stamp cut (rejected, not dropped: pitfall 10)
        ("04b036", 3),  # user id missing
        ("08b036f500", 5),  # height missing
    ],
)
def test_truncated_weight_is_refused(hex_value: str, offset: int) -> None:
    with pytest.raises(MalformedPayload) as caught:
        decode("2a9d", bytes.fromhex(hex_value))
    assert caught.value.offset == offset


def test_body_composition_fat_impedance_weight_height() -> None:
    # nguyenquocanhz/SoTuyenNghiaVu@0edac08 sig.test.ts#L90-L102 (raw octets verbatim)
    assert decode("2a9c", bytes.fromhex("000ed7008813b036d606")) == DecodeResult(
        "2a9c",
        "body_composition_measurement",
        {
            "unit_system": "SI",
            "body_fat_percent": 21.5,
            "measurement_unsuccessful": False,
            "timestamp": None,
            "user_id": None,
            "basal_metabolism_kj": None,
            "muscle_percent": None,
            "muscle_mass_kg": None,
            "fat_free_mass_kg": None,
            "soft_lean_mass_kg": None,
            "body_water_mass_kg": None,
            "impedance_ohm": 500.0,
            "weight_kg": 70.0,
            "height_m": 1.75,
            "multiple_packet_measurement": False,
        },
        (Measurement("body_weight", 70.0, "kg", None, 70.0, "kg"),),
    )


def test_body_composition_every_field_imperial() -> None:
    # constructed: flags 0x1FFF; fat 21.5 %; 2024-01-15 08:30:00; user 1; BMR 6000 kJ;
    # muscle 40.0 %; masses 60.00/120.00/100.00/80.00 lb; 500.0 ohm; 154.32 lb; 68.0 in
    octets = bytes.fromhex("ff1fd700e807010f081e0001701790017017e02e1027401f8813483ca802")
    assert decode("2a9c", octets).fields == {
        "unit_system": "imperial",
        "body_fat_percent": 21.5,
        "measurement_unsuccessful": False,
        "timestamp": "2024-01-15T08:30:00",
        "user_id": 1,
        "basal_metabolism_kj": 6000,
        "muscle_percent": 40.0,
        "muscle_mass_lb": 60.0,
        "fat_free_mass_lb": 120.0,
        "soft_lean_mass_lb": 100.0,
        "body_water_mass_lb": 80.0,
        "impedance_ohm": 500.0,
        "weight_lb": 154.32,
        "height_in": 68.0,
        "multiple_packet_measurement": True,
    }


def test_body_composition_unsuccessful() -> None:
    result = decode("2a9c", bytes.fromhex("0000ffff"))
    assert result.fields["body_fat_percent"] is None
    assert result.fields["measurement_unsuccessful"] is True
    assert result.measurements == ()


@pytest.mark.parametrize("hex_value", ["00", "0000d7", "0004d700b0", "0008d70088"])
def test_truncated_body_composition_is_refused(hex_value: str) -> None:
    with pytest.raises(MalformedPayload):
        decode("2a9c", bytes.fromhex(hex_value))

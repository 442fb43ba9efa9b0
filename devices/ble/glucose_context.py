"""Glucose Measurement Context (0x2A34, notify): context for the 0x2A18 record of the same
sequence number.

Flags u8 (b0 carbohydrate, b1 meal, b2 tester-health, b3 exercise, b4 medication, b5
medication in litres (else kg), b6 HbA1c, b7 extended flags) · Sequence Number u16 ·
[Extended Flags u8] · [Carbohydrate ID u8 · Carbohydrate SFLOAT kg] · [Meal u8] · [Tester
(low nibble) / Health (high nibble) u8] · [Exercise Duration u16 s · Exercise Intensity u8 %]
· [Medication ID u8 · Medication SFLOAT kg or L] · [HbA1c SFLOAT %].

Context only: no reading of its own.
"""

from __future__ import annotations

from typing import Any, Final

from devices.ble.ieee11073 import json_value
from devices.ble.reader import Reader
from devices.ble.result import DecodeResult

CHARACTERISTIC: Final = "2a34"
CARBOHYDRATES: Final = {
    1: "breakfast",
    2: "lunch",
    3: "dinner",
    4: "snack",
    5: "drink",
    6: "supper",
    7: "brunch",
}
MEALS: Final = {1: "preprandial", 2: "postprandial", 3: "fasting", 4: "casual", 5: "bedtime"}
TESTERS: Final = {1: "self", 2: "health_care_professional", 3: "lab_test", 15: "not_available"}
HEALTH: Final = {
    1: "minor_health_issues",
    2: "major_health_issues",
    3: "during_menses",
    4: "under_stress",
    5: "no_health_issues",
    15: "not_available",
}
MEDICATIONS: Final = {
    1: "rapid_acting_insulin",
    2: "short_acting_insulin",
    3: "intermediate_acting_insulin",
    4: "long_acting_insulin",
    5: "pre_mixed_insulin",
}
EXERCISE_DURATION_OVERRUN: Final = 0xFFFF


def _name(table: dict[int, str], key: int | None) -> str | None:
    return None if key is None else table.get(key, "reserved")


def decode_glucose_context(data: bytes) -> DecodeResult:
    r = Reader(data, "Glucose Measurement Context")
    flags = r.u8("Flags")
    fields: dict[str, Any] = {"sequence_number": r.u16("Sequence Number")}
    fields["extended_flags"] = r.u8("Extended Flags") if flags & 0x80 else None

    carb_id = carb = None
    if flags & 0x01:
        carb_id = r.u8("Carbohydrate ID")
        carb = json_value(r.sfloat("Carbohydrate"))
    fields["carbohydrate_id"] = carb_id
    fields["carbohydrate_name"] = _name(CARBOHYDRATES, carb_id)
    fields["carbohydrate_kg"] = carb

    meal = r.u8("Meal") if flags & 0x02 else None
    fields["meal"] = meal
    fields["meal_name"] = _name(MEALS, meal)

    tester = health = None
    if flags & 0x04:
        tester_health = r.u8("Tester-Health")
        tester, health = tester_health & 0x0F, tester_health >> 4
    fields["tester"] = tester
    fields["tester_name"] = _name(TESTERS, tester)
    fields["health"] = health
    fields["health_name"] = _name(HEALTH, health)

    duration = intensity = None
    if flags & 0x08:
        duration = r.u16("Exercise Duration")
        intensity = r.u8("Exercise Intensity")
    fields["exercise_duration_s"] = duration
    fields["exercise_duration_overrun"] = duration == EXERCISE_DURATION_OVERRUN
    fields["exercise_intensity_percent"] = intensity

    medication_id = medication = unit = None
    if flags & 0x10:
        medication_id = r.u8("Medication ID")
        medication = json_value(r.sfloat("Medication"))
        unit = "L" if flags & 0x20 else "kg"
    fields["medication_id"] = medication_id
    fields["medication_name"] = _name(MEDICATIONS, medication_id)
    fields["medication"] = medication
    fields["medication_unit"] = unit

    fields["hba1c_percent"] = json_value(r.sfloat("HbA1c")) if flags & 0x40 else None
    r.end()
    return DecodeResult(CHARACTERISTIC, "glucose_measurement_context", fields)

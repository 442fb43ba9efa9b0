"""Weight Measurement (0x2A9D, indicate) and Body Composition Measurement (0x2A9C, indicate).

Weight: Flags u8 (b0 imperial, b1 Time Stamp, b2 User ID, b3 BMI and Height) · Weight u16 ·
[Time Stamp, Date Time] · [User ID u8, 255 unknown] · [BMI u16, 0.1 kg/m2 · Height u16].
Weight resolution is fixed by the field: 0.005 kg (SI) or 0.01 lb (imperial); height 0.001 m
or 0.1 in. The Weight Scale Feature's resolution bits describe precision, not the encoding.
Weight 0xFFFF means "measurement unsuccessful".

Body Composition: Flags u16 (b0 imperial, b1 Time Stamp, b2 User ID, b3 Basal Metabolism, b4
Muscle %, b5 Muscle Mass, b6 Fat Free Mass, b7 Soft Lean Mass, b8 Body Water Mass, b9
Impedance, b10 Weight, b11 Height, b12 multiple-packet measurement) · Body Fat % u16 (0.1 %,
0xFFFF unsuccessful) · then the optional fields in flag order; masses as Weight.

Readings: ``body_weight`` (kg, or [lb_av] converted to kg).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from devices.ble.reader import Reader
from devices.ble.result import DecodeResult, Measurement, measurement, time_stamp

WEIGHT_CHARACTERISTIC: Final = "2a9d"
BODY_COMPOSITION_CHARACTERISTIC: Final = "2a9c"
UNSUCCESSFUL: Final = 0xFFFF


class _Units:
    """Suffixes and divisors of one unit system (integers divide exactly: 14000/200 == 70.0)."""

    __slots__ = ("system", "mass", "mass_ucum", "mass_div", "length", "length_div")

    def __init__(self, imperial: bool) -> None:
        self.system = "imperial" if imperial else "SI"
        self.mass = "lb" if imperial else "kg"
        self.mass_ucum = "[lb_av]" if imperial else "kg"
        self.mass_div = 100 if imperial else 200
        self.length = "in" if imperial else "m"
        self.length_div = 10 if imperial else 1000


_SI: Final = _Units(imperial=False)
_IMPERIAL: Final = _Units(imperial=True)


def _time_and_user(
    r: Reader, fields: dict[str, Any], has_time: bool, has_user: bool
) -> tuple[datetime | None, int | None, list[str]]:
    status: list[str] = []
    measured_at = time_stamp(r, has_time, "Time Stamp", fields, status)
    user_id = r.u8("User ID") if has_user else None
    fields["user_id"] = user_id
    return measured_at, user_id, status


def _weight_reading(
    raw: int | None, u: _Units, at: datetime | None, status: list[str], user_id: int | None
) -> tuple[Measurement, ...]:
    if raw is None or raw == UNSUCCESSFUL:
        return ()
    return (measurement("body_weight", raw / u.mass_div, u.mass_ucum, at, status, user_id=user_id),)


def decode_weight(data: bytes) -> DecodeResult:
    r = Reader(data, "Weight Measurement")
    flags = r.u8("Flags")
    u = _IMPERIAL if flags & 0x01 else _SI
    raw_weight = r.u16("Weight")
    unsuccessful = raw_weight == UNSUCCESSFUL
    fields: dict[str, Any] = {
        "unit_system": u.system,
        f"weight_{u.mass}": None if unsuccessful else raw_weight / u.mass_div,
        "measurement_unsuccessful": unsuccessful,
    }
    at, user_id, status = _time_and_user(r, fields, bool(flags & 0x02), bool(flags & 0x04))
    if flags & 0x08:
        fields["bmi"] = r.u16("BMI") / 10
        fields[f"height_{u.length}"] = r.u16("Height") / u.length_div
    else:
        fields["bmi"] = None
        fields[f"height_{u.length}"] = None
    r.end()
    readings = _weight_reading(raw_weight, u, at, status, user_id)
    return DecodeResult(WEIGHT_CHARACTERISTIC, "weight_measurement", fields, readings)


def decode_body_composition(data: bytes) -> DecodeResult:
    r = Reader(data, "Body Composition Measurement")
    flags = r.u16("Flags")
    u = _IMPERIAL if flags & 0x0001 else _SI
    raw_fat = r.u16("Body Fat Percentage")
    fields: dict[str, Any] = {
        "unit_system": u.system,
        "body_fat_percent": None if raw_fat == UNSUCCESSFUL else raw_fat / 10,
        "measurement_unsuccessful": raw_fat == UNSUCCESSFUL,
    }
    at, user_id, status = _time_and_user(r, fields, bool(flags & 0x0002), bool(flags & 0x0004))
    fields["basal_metabolism_kj"] = r.u16("Basal Metabolism") if flags & 0x0008 else None
    fields["muscle_percent"] = r.u16("Muscle Percentage") / 10 if flags & 0x0010 else None
    for bit, name, label in (
        (0x0020, "muscle_mass", "Muscle Mass"),
        (0x0040, "fat_free_mass", "Fat Free Mass"),
        (0x0080, "soft_lean_mass", "Soft Lean Mass"),
        (0x0100, "body_water_mass", "Body Water Mass"),
    ):
        fields[f"{name}_{u.mass}"] = r.u16(label) / u.mass_div if flags & bit else None
    fields["impedance_ohm"] = r.u16("Impedance") / 10 if flags & 0x0200 else None
    raw_weight = r.u16("Weight") if flags & 0x0400 else None
    fields[f"weight_{u.mass}"] = (
        None if raw_weight is None or raw_weight == UNSUCCESSFUL else raw_weight / u.mass_div
    )
    fields[f"height_{u.length}"] = r.u16("Height") / u.length_div if flags & 0x0800 else None
    fields["multiple_packet_measurement"] = bool(flags & 0x1000)
    r.end()
    readings = _weight_reading(raw_weight, u, at, status, user_id)
    return DecodeResult(BODY_COMPOSITION_CHARACTERISTIC, "body_composition_measurement", fields, readings)

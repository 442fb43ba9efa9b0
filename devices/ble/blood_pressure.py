"""Blood Pressure Measurement (0x2A35, indicate) and Intermediate Cuff Pressure (0x2A36, notify).

Flags u8 (b0 unit kPa, b1 Time Stamp, b2 Pulse Rate, b3 User ID, b4 Measurement Status) ·
Systolic SFLOAT · Diastolic SFLOAT · MAP SFLOAT · [Time Stamp, Date Time] · [Pulse Rate SFLOAT]
· [User ID u8, 255 unknown] · [Measurement Status 16-bit]. Intermediate Cuff Pressure has the
same layout: the first SFLOAT is the current cuff pressure, the other two are unused.

Readings (0x2A35 only): ``systolic_bp`` and ``diastolic_bp`` as a panel (both or neither),
``mean_arterial_pressure`` with them when it is a number, and ``heart_rate`` from the pulse
rate. The measurement status flags travel with every reading. Intermediate cuff pressure is
progress while the cuff inflates and yields no reading.
"""

from __future__ import annotations

from typing import Any, Final

from devices.ble.ieee11073 import Number, SpecialValue, json_value
from devices.ble.reader import Reader
from devices.ble.result import DecodeResult, Measurement, measurement, time_stamp

BPM_CHARACTERISTIC: Final = "2a35"
ICP_CHARACTERISTIC: Final = "2a36"
_PULSE_RANGE: Final = ("within_range", "exceeds_upper_limit", "below_lower_limit", "reserved")
_PULSE_RANGE_FLAG: Final = (None, "pulse_rate_exceeds_upper_limit", "pulse_rate_below_lower_limit", None)


def _status_fields(raw: int) -> tuple[dict[str, Any], list[str]]:
    pulse_range = (raw >> 3) & 0x03
    fields = {
        "raw": raw,
        "body_movement_detected": bool(raw & 0x01),
        "cuff_too_loose": bool(raw & 0x02),
        "irregular_pulse_detected": bool(raw & 0x04),
        "pulse_rate_range": _PULSE_RANGE[pulse_range],
        "improper_measurement_position": bool(raw & 0x20),
    }
    flags: list[str] = []
    if raw & 0x01:
        flags.append("body_movement")
    if raw & 0x02:
        flags.append("cuff_too_loose")
    if raw & 0x04:
        flags.append("irregular_pulse")
    range_flag = _PULSE_RANGE_FLAG[pulse_range]
    if range_flag is not None:
        flags.append(range_flag)
    if raw & 0x20:
        flags.append("improper_measurement_position")
    return fields, flags


class _Common:
    """The fields both characteristics share, read in wire order."""

    __slots__ = ("fields", "status", "measured_at", "user_id", "pulse")

    def __init__(self, r: Reader, flags: int, fields: dict[str, Any]) -> None:
        self.fields = fields
        self.status: list[str] = []
        self.measured_at = time_stamp(r, bool(flags & 0x02), "Time Stamp", fields, self.status)
        self.pulse: Number | None = r.sfloat("Pulse Rate") if flags & 0x04 else None
        fields["pulse_rate_bpm"] = None if self.pulse is None else json_value(self.pulse)
        self.user_id: int | None = r.u8("User ID") if flags & 0x08 else None
        fields["user_id"] = self.user_id
        if flags & 0x10:
            status_fields, status_flags = _status_fields(r.u16("Measurement Status"))
            fields["measurement_status"] = status_fields
            self.status.extend(status_flags)
        else:
            fields["measurement_status"] = None
        r.end()


def decode_blood_pressure(data: bytes) -> DecodeResult:
    r = Reader(data, "Blood Pressure Measurement")
    flags = r.u8("Flags")
    unit = "kPa" if flags & 0x01 else "mm[Hg]"
    systolic = r.sfloat("Systolic")
    diastolic = r.sfloat("Diastolic")
    mean = r.sfloat("Mean Arterial Pressure")
    fields: dict[str, Any] = {
        "unit": "kPa" if flags & 0x01 else "mmHg",
        "systolic": json_value(systolic),
        "diastolic": json_value(diastolic),
        "mean_arterial_pressure": json_value(mean),
    }
    common = _Common(r, flags, fields)
    at, status, user = common.measured_at, common.status, common.user_id
    readings: list[Measurement] = []
    if not isinstance(systolic, SpecialValue) and not isinstance(diastolic, SpecialValue):
        readings.append(measurement("systolic_bp", systolic, unit, at, status, user_id=user))
        readings.append(measurement("diastolic_bp", diastolic, unit, at, status, user_id=user))
        if not isinstance(mean, SpecialValue):
            readings.append(measurement("mean_arterial_pressure", mean, unit, at, status, user_id=user))
    pulse = common.pulse
    if pulse is not None and not isinstance(pulse, SpecialValue):
        readings.append(measurement("heart_rate", pulse, "/min", at, status, user_id=user))
    return DecodeResult(BPM_CHARACTERISTIC, "blood_pressure_measurement", fields, tuple(readings))


def decode_intermediate_cuff_pressure(data: bytes) -> DecodeResult:
    r = Reader(data, "Intermediate Cuff Pressure")
    flags = r.u8("Flags")
    cuff = r.sfloat("Current Cuff Pressure")
    r.need(4, "unused Diastolic and MAP slots")
    r.pos += 4
    fields: dict[str, Any] = {
        "unit": "kPa" if flags & 0x01 else "mmHg",
        "cuff_pressure": json_value(cuff),
    }
    _Common(r, flags, fields)
    return DecodeResult(ICP_CHARACTERISTIC, "intermediate_cuff_pressure", fields)

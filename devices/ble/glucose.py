"""Glucose Measurement (0x2A18, notify; Glucose service 0x1808).

Flags u8 (b0 Time Offset, b1 Concentration + Type/Sample Location, b2 unit mol/L (else kg/L),
b3 Sensor Status Annunciation, b4 Context Information Follows) · Sequence Number u16 · Base
Time (Date Time) · [Time Offset sint16 minutes] · [Concentration SFLOAT · Type (low nibble) /
Sample Location (high nibble) u8] · [Sensor Status Annunciation 16-bit].

The user-facing time is Base Time + Time Offset. Readings: ``blood_glucose`` (kg/L x 100 000 =
mg/dL; mol/L via mmol/L), with the sensor status flags. A control-solution test (type 10 or
location 4) checks the meter, not the patient, and yields no reading.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

from devices.ble.ieee11073 import Number, SpecialValue, json_value
from devices.ble.reader import Reader
from devices.ble.result import DecodeResult, Measurement, measurement, status_field

CHARACTERISTIC: Final = "2a18"
SAMPLE_TYPES: Final = {
    1: "capillary_whole_blood",
    2: "capillary_plasma",
    3: "venous_whole_blood",
    4: "venous_plasma",
    5: "arterial_whole_blood",
    6: "arterial_plasma",
    7: "undetermined_whole_blood",
    8: "undetermined_plasma",
    9: "interstitial_fluid",
    10: "control_solution",
}
SAMPLE_LOCATIONS: Final = {
    1: "finger",
    2: "alternate_site_test",
    3: "earlobe",
    4: "control_solution",
    15: "not_available",
}
CONTROL_SOLUTION_TYPE: Final = 10
CONTROL_SOLUTION_LOCATION: Final = 4
SENSOR_STATUS_FLAGS: Final = (
    (0x0001, "device_battery_low"),
    (0x0002, "sensor_malfunction"),
    (0x0004, "sample_size_insufficient"),
    (0x0008, "strip_insertion_error"),
    (0x0010, "strip_type_incorrect"),
    (0x0020, "result_above_device_range"),
    (0x0040, "result_below_device_range"),
    (0x0080, "sensor_temperature_too_high"),
    (0x0100, "sensor_temperature_too_low"),
    (0x0200, "sensor_read_interrupted"),
    (0x0400, "general_device_fault"),
    (0x0800, "time_fault"),
)


def _user_facing_time(base: datetime | None, offset_min: int | None) -> datetime | None:
    if base is None or not offset_min:
        return base
    try:
        return base + timedelta(minutes=offset_min)
    except OverflowError:  # past year 9999 or before year 1: no usable time
        return None


def decode_glucose(data: bytes) -> DecodeResult:
    r = Reader(data, "Glucose Measurement")
    flags = r.u8("Flags")
    sequence = r.u16("Sequence Number")
    base = r.date_time("Base Time")
    fields: dict[str, Any] = {"sequence_number": sequence}
    base.describe("base_time", fields)
    offset_min = r.s16("Time Offset") if flags & 0x01 else None
    fields["time_offset_min"] = offset_min
    measured_at = _user_facing_time(base.value, offset_min)
    fields["timestamp"] = None if measured_at is None else measured_at.isoformat()
    concentration: Number | None = None
    unit: str | None = None
    sample_type = location = None
    if flags & 0x02:
        concentration = r.sfloat("Glucose Concentration")
        type_location = r.u8("Type-Sample Location")
        sample_type, location = type_location & 0x0F, type_location >> 4
        unit = "mol/L" if flags & 0x04 else "kg/L"
    fields["glucose_concentration"] = None if concentration is None else json_value(concentration)
    fields["glucose_unit"] = unit
    fields["sample_type"] = sample_type
    fields["sample_type_name"] = None if sample_type is None else SAMPLE_TYPES.get(sample_type, "reserved")
    fields["sample_location"] = location
    fields["sample_location_name"] = None if location is None else SAMPLE_LOCATIONS.get(location, "reserved")
    status: list[str] = [] if measured_at is not None else ["device_time_unknown"]
    raw_status = r.u16("Sensor Status Annunciation") if flags & 0x08 else None
    fields["sensor_status_annunciation"] = status_field(raw_status, SENSOR_STATUS_FLAGS, status)
    fields["context_information_follows"] = bool(flags & 0x10)
    r.end()
    readings: tuple[Measurement, ...] = ()
    if (
        concentration is not None
        and unit is not None
        and not isinstance(concentration, SpecialValue)
        and sample_type != CONTROL_SOLUTION_TYPE
        and location != CONTROL_SOLUTION_LOCATION
    ):
        readings = (measurement("blood_glucose", concentration, unit, measured_at, status),)
    return DecodeResult(CHARACTERISTIC, "glucose_measurement", fields, readings)

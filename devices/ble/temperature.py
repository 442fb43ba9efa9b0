"""Temperature Measurement (0x2A1C, indicate) and Intermediate Temperature (0x2A1E, notify).

Flags u8 (b0 Fahrenheit, b1 Time Stamp, b2 Temperature Type) · Temperature FLOAT (32-bit) ·
[Time Stamp, Date Time] · [Temperature Type u8].

Readings (0x2A1C only): ``body_temperature``, converted from degrees Fahrenheit when the device
sent them. Intermediate temperature is a running value and yields no reading.
"""

from __future__ import annotations

from typing import Any, Final

from devices.ble.ieee11073 import SpecialValue, json_value
from devices.ble.reader import Reader
from devices.ble.result import DecodeResult, Measurement, measurement, time_stamp

TEMPERATURE_CHARACTERISTIC: Final = "2a1c"
INTERMEDIATE_CHARACTERISTIC: Final = "2a1e"
TEMPERATURE_TYPES: Final = {
    1: "armpit",
    2: "body",
    3: "ear",
    4: "finger",
    5: "gastrointestinal_tract",
    6: "mouth",
    7: "rectum",
    8: "toe",
    9: "tympanum",
}


def _decode(data: bytes, what: str, characteristic: str, name: str, final: bool) -> DecodeResult:
    r = Reader(data, what)
    flags = r.u8("Flags")
    temperature = r.float32("Temperature Measurement Value")
    fahrenheit = bool(flags & 0x01)
    fields: dict[str, Any] = {
        "temperature": json_value(temperature),
        "temperature_unit": "degF" if fahrenheit else "Cel",
    }
    status: list[str] = []
    measured_at = time_stamp(r, bool(flags & 0x02), "Time Stamp", fields, status)
    if flags & 0x04:
        kind = r.u8("Temperature Type")
        fields["temperature_type"] = kind
        fields["temperature_type_name"] = TEMPERATURE_TYPES.get(kind, "reserved")
    else:
        fields["temperature_type"] = None
        fields["temperature_type_name"] = None
    r.end()
    readings: tuple[Measurement, ...] = ()
    if final and not isinstance(temperature, SpecialValue):
        unit = "[degF]" if fahrenheit else "Cel"
        readings = (measurement("body_temperature", temperature, unit, measured_at, status),)
    return DecodeResult(characteristic, name, fields, readings)


def decode_temperature(data: bytes) -> DecodeResult:
    return _decode(
        data,
        "Temperature Measurement",
        TEMPERATURE_CHARACTERISTIC,
        "temperature_measurement",
        final=True,
    )


def decode_intermediate_temperature(data: bytes) -> DecodeResult:
    return _decode(
        data,
        "Intermediate Temperature",
        INTERMEDIATE_CHARACTERISTIC,
        "intermediate_temperature",
        final=False,
    )

"""One entry point: ``decode(characteristic, data)`` for every supported GATT characteristic.

``characteristic`` may be a 16-bit UUID as text (``"2a37"``, ``"0x2A37"``), as an int
(``0x2A37``) or the full 128-bit UUID on the Bluetooth base
(``"00002a37-0000-1000-8000-00805f9b34fb"``, the form bleak uses).

The Record Access Control Point decodes here as the server's indication (what a device
sends); use :func:`devices.ble.racp.decode_racp_request` for what a collector writes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from devices.ble.battery import decode_battery_level
from devices.ble.blood_pressure import decode_blood_pressure, decode_intermediate_cuff_pressure
from devices.ble.cgm import decode_cgm
from devices.ble.current_time import decode_current_time, decode_date_time
from devices.ble.glucose import decode_glucose
from devices.ble.glucose_context import decode_glucose_context
from devices.ble.heart_rate import decode_heart_rate
from devices.ble.pulse_oximetry import decode_plx_continuous, decode_plx_spot_check
from devices.ble.racp import decode_racp_response
from devices.ble.result import DecodeResult
from devices.ble.temperature import decode_intermediate_temperature, decode_temperature
from devices.ble.weight import decode_body_composition, decode_weight
from devices.errors import MalformedPayload, UnsupportedCharacteristic

Decoder = Callable[[bytes], DecodeResult]

BASE_UUID_SUFFIX: Final = "-0000-1000-8000-00805f9b34fb"

# The GATT services of the health profiles, by 16-bit UUID (the collector scans for these).
HEART_RATE_SERVICE: Final = 0x180D
BLOOD_PRESSURE_SERVICE: Final = 0x1810
HEALTH_THERMOMETER_SERVICE: Final = 0x1809
PULSE_OXIMETER_SERVICE: Final = 0x1822
WEIGHT_SCALE_SERVICE: Final = 0x181D
BODY_COMPOSITION_SERVICE: Final = 0x181B
GLUCOSE_SERVICE: Final = 0x1808
CONTINUOUS_GLUCOSE_MONITORING_SERVICE: Final = 0x181F

SERVICES: Final[Mapping[int, str]] = {
    HEART_RATE_SERVICE: "heart_rate",
    BLOOD_PRESSURE_SERVICE: "blood_pressure",
    HEALTH_THERMOMETER_SERVICE: "health_thermometer",
    PULSE_OXIMETER_SERVICE: "pulse_oximeter",
    WEIGHT_SCALE_SERVICE: "weight_scale",
    BODY_COMPOSITION_SERVICE: "body_composition",
    GLUCOSE_SERVICE: "glucose",
    CONTINUOUS_GLUCOSE_MONITORING_SERVICE: "continuous_glucose_monitoring",
}


@dataclass(frozen=True, slots=True)
class Characteristic:
    """One supported characteristic: what the decoder and the collector need to know of it."""

    name: str
    decoder: Decoder
    service: int | None
    """The health service (a key of :data:`SERVICES`) it belongs to in its Bluetooth SIG
    profile; None when it belongs to another service or to several (Battery, Current Time,
    Date Time, RACP)."""
    live: bool
    """Whether the collector subscribes to it as a live measurement. Not live: intermediate
    values (progress, no readings), stored records fetched through RACP, and CGM (needs the
    session start time)."""


_C = Characteristic

# 16-bit UUID -> characteristic. Table order is the collector's subscription order.
DECODERS: Final[Mapping[int, Characteristic]] = {
    0x2A37: _C("Heart Rate Measurement", decode_heart_rate, HEART_RATE_SERVICE, live=True),
    0x2A35: _C("Blood Pressure Measurement", decode_blood_pressure, BLOOD_PRESSURE_SERVICE, live=True),
    0x2A36: _C(
        "Intermediate Cuff Pressure", decode_intermediate_cuff_pressure, BLOOD_PRESSURE_SERVICE, live=False
    ),
    0x2A1C: _C("Temperature Measurement", decode_temperature, HEALTH_THERMOMETER_SERVICE, live=True),
    0x2A1E: _C(
        "Intermediate Temperature", decode_intermediate_temperature, HEALTH_THERMOMETER_SERVICE, live=False
    ),
    0x2A18: _C("Glucose Measurement", decode_glucose, GLUCOSE_SERVICE, live=False),
    0x2A34: _C("Glucose Measurement Context", decode_glucose_context, GLUCOSE_SERVICE, live=False),
    0x2A52: _C("Record Access Control Point", decode_racp_response, None, live=False),
    0x2A5E: _C("PLX Spot-Check Measurement", decode_plx_spot_check, PULSE_OXIMETER_SERVICE, live=True),
    0x2A5F: _C("PLX Continuous Measurement", decode_plx_continuous, PULSE_OXIMETER_SERVICE, live=True),
    0x2A9D: _C("Weight Measurement", decode_weight, WEIGHT_SCALE_SERVICE, live=True),
    0x2A9C: _C("Body Composition Measurement", decode_body_composition, BODY_COMPOSITION_SERVICE, live=True),
    0x2AA7: _C("CGM Measurement", decode_cgm, CONTINUOUS_GLUCOSE_MONITORING_SERVICE, live=False),
    0x2A08: _C("Date Time", decode_date_time, None, live=False),
    0x2A2B: _C("Current Time", decode_current_time, None, live=False),
    0x2A19: _C("Battery Level", decode_battery_level, None, live=False),
}
del _C

_SHORT_RE: Final = re.compile(r"(?:0x)?([0-9a-f]{4}|0000[0-9a-f]{4})")
_LONG_RE: Final = re.compile(r"0000([0-9a-f]{4})" + re.escape(BASE_UUID_SUFFIX))
_MAX_UUID_TEXT: Final = 64


def full_uuid(short: int) -> str:
    """The 128-bit form (lowercase, as bleak reports it) of a 16-bit UUID."""
    return f"0000{short:04x}{BASE_UUID_SUFFIX}"


def short_uuid(characteristic: str | int) -> int:
    """The 16-bit UUID of ``characteristic``; raise UnsupportedCharacteristic if it is none."""
    if isinstance(characteristic, bool):
        raise UnsupportedCharacteristic(f"{characteristic!r} is not a characteristic UUID")
    if isinstance(characteristic, int):
        if 0 <= characteristic <= 0xFFFF:
            return characteristic
        raise UnsupportedCharacteristic(f"0x{characteristic:X} is not a 16-bit UUID")
    if not isinstance(characteristic, str):
        raise UnsupportedCharacteristic(
            f"characteristic must be a UUID string or int, not {type(characteristic).__name__}"
        )
    if len(characteristic) > _MAX_UUID_TEXT:
        raise UnsupportedCharacteristic("characteristic UUID text is too long")
    text = characteristic.strip().lower()
    match = _SHORT_RE.fullmatch(text) or _LONG_RE.fullmatch(text)
    if match is None:
        raise UnsupportedCharacteristic(
            f"{characteristic!r} is not a 16-bit UUID or a 128-bit UUID on the Bluetooth base"
        )
    return int(match.group(1)[-4:], 16)


# Fast path: the forms callers actually pass, resolved once.
_LOOKUP: Final[dict[str | int, Decoder]] = {}
for _short, _characteristic in DECODERS.items():
    _decoder = _characteristic.decoder
    for _key in (_short, f"{_short:04x}", f"{_short:04X}", f"0x{_short:04x}", f"0x{_short:04X}"):
        _LOOKUP[_key] = _decoder
    _LOOKUP[full_uuid(_short)] = _decoder
    _LOOKUP[full_uuid(_short).upper()] = _decoder


def decoder_for(characteristic: str | int) -> Decoder:
    """The decoder of ``characteristic``; raise UnsupportedCharacteristic if there is none."""
    try:
        found = _LOOKUP.get(characteristic)
    except TypeError:  # unhashable: not a UUID; short_uuid says why
        found = None
    if found is not None and not isinstance(characteristic, bool):
        return found
    short = short_uuid(characteristic)
    entry = DECODERS.get(short)
    if entry is None:
        raise UnsupportedCharacteristic(f"characteristic 0x{short:04X} is not supported")
    return entry.decoder


def is_supported(characteristic: str | int) -> bool:
    try:
        decoder_for(characteristic)
    except UnsupportedCharacteristic:
        return False
    return True


def decode(characteristic: str | int, data: bytes | bytearray | memoryview) -> DecodeResult:
    """Decode one GATT value. Raises :class:`MalformedPayload` (and only that) on bad input."""
    decoder = decoder_for(characteristic)
    if not isinstance(data, bytes):
        if not isinstance(data, bytearray | memoryview):
            raise MalformedPayload(f"value must be bytes, not {type(data).__name__}")
        try:
            data = bytes(data)
        except (TypeError, ValueError) as exc:  # e.g. a non-contiguous memoryview
            raise MalformedPayload(f"value is not a readable byte buffer: {exc}") from None
    return decoder(data)

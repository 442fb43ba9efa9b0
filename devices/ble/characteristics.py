"""One entry point: ``decode(characteristic, data)`` for every supported GATT characteristic.

``characteristic`` may be a 16-bit UUID as text (``"2a37"``, ``"0x2A37"``), as an int
(``0x2A37``) or the full 128-bit UUID on the Bluetooth base
(``"00002a37-0000-1000-8000-00805f9b34fb"``, the form bleak uses).

The Record Access Control Point decodes here as the server's indication (what a device
sends); use :func:`devices.ble.racp.decode_racp_request` for what a collector writes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
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

# 16-bit UUID -> (characteristic name, decoder)
DECODERS: Final[dict[int, tuple[str, Decoder]]] = {
    0x2A37: ("Heart Rate Measurement", decode_heart_rate),
    0x2A35: ("Blood Pressure Measurement", decode_blood_pressure),
    0x2A36: ("Intermediate Cuff Pressure", decode_intermediate_cuff_pressure),
    0x2A1C: ("Temperature Measurement", decode_temperature),
    0x2A1E: ("Intermediate Temperature", decode_intermediate_temperature),
    0x2A18: ("Glucose Measurement", decode_glucose),
    0x2A34: ("Glucose Measurement Context", decode_glucose_context),
    0x2A52: ("Record Access Control Point", decode_racp_response),
    0x2A5E: ("PLX Spot-Check Measurement", decode_plx_spot_check),
    0x2A5F: ("PLX Continuous Measurement", decode_plx_continuous),
    0x2A9D: ("Weight Measurement", decode_weight),
    0x2A9C: ("Body Composition Measurement", decode_body_composition),
    0x2AA7: ("CGM Measurement", decode_cgm),
    0x2A08: ("Date Time", decode_date_time),
    0x2A2B: ("Current Time", decode_current_time),
    0x2A19: ("Battery Level", decode_battery_level),
}

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
for _short, (_, _decoder) in DECODERS.items():
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
    return entry[1]


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

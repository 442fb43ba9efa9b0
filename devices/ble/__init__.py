"""Bluetooth SIG GATT health profiles: pure decoders (bytes in, canonical measurements out).

Nothing here does I/O or imports bleak: the collector (the one module that talks to the
radio) hands each notification to :func:`decode`.
"""

from devices.ble.characteristics import decode, decoder_for, full_uuid, is_supported, short_uuid
from devices.ble.ieee11073 import SpecialValue
from devices.ble.result import DecodeResult, Measurement
from devices.ble.wire import wire_reading, wire_readings
from devices.errors import EncodeError, UnsupportedCharacteristic

__all__ = [
    "DecodeResult",
    "EncodeError",
    "Measurement",
    "SpecialValue",
    "UnsupportedCharacteristic",
    "decode",
    "decoder_for",
    "full_uuid",
    "is_supported",
    "short_uuid",
    "wire_reading",
    "wire_readings",
]

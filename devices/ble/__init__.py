"""Bluetooth SIG GATT health profiles: pure decoders (bytes in, canonical measurements out).

The decoders (every profile module and the tables behind :func:`decode`) do no I/O and import no bleak.
:mod:`devices.ble.collector` is the one production module that imports bleak (and
bleak-retry-connector): it talks to the radio and hands each notification to :func:`decode`; the
rest of the collector (``collector_api``, ``collector_loop``, ``collector_session`` and the other
``collector_*`` modules) works through its interface and imports neither. :mod:`devices.ble.emulated`
runs emulated peripherals on Google's bumble (and its ``bleak_backend`` plugs them into bleak), for
tests and the demo. Importing this package imports neither bleak nor bumble.
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

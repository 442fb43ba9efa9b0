"""IEEE 11073-20601 SFLOAT (16-bit) and FLOAT (32-bit) medical number formats.

SFLOAT: exponent in bits 15-12 (4-bit two's complement), mantissa in bits 11-0 (12-bit two's
complement). FLOAT: exponent in bits 31-24 (int8), mantissa in bits 23-0 (24-bit two's
complement). Value = mantissa x 10^exponent; there is no exponent bias.

Five mantissas with exponent 0 are reserved and carry no number: NaN, NRes (not at this
resolution), +INF, -INF and a value reserved for future use. They decode to
:class:`SpecialValue`, never to a float, so they can never be stored as a clinical value.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from devices.errors import EncodeError, MalformedPayload


class SpecialValue(StrEnum):
    """A reserved IEEE 11073 value: "no valid number". The string form is what JSON shows."""

    NAN = "NaN"
    NRES = "NRes"
    POSITIVE_INFINITY = "+INF"
    NEGATIVE_INFINITY = "-INF"
    RESERVED = "RFU"


Number = float | SpecialValue

# 10**n as exact integers; dividing an int mantissa by an int power of ten gives the correctly
# rounded float (189 / 10 == 18.9), where multiplying by 10**-1 would not (18.900000000000002).
_POW10: Final[tuple[int, ...]] = tuple(10**n for n in range(129))

_SFLOAT_SPECIAL: Final[dict[int, SpecialValue]] = {
    0x07FF: SpecialValue.NAN,
    0x0800: SpecialValue.NRES,
    0x07FE: SpecialValue.POSITIVE_INFINITY,
    0x0802: SpecialValue.NEGATIVE_INFINITY,
    0x0801: SpecialValue.RESERVED,
}
_FLOAT_SPECIAL: Final[dict[int, SpecialValue]] = {
    0x007FFFFF: SpecialValue.NAN,
    0x00800000: SpecialValue.NRES,
    0x007FFFFE: SpecialValue.POSITIVE_INFINITY,
    0x00800002: SpecialValue.NEGATIVE_INFINITY,
    0x00800001: SpecialValue.RESERVED,
}


# sfloat_from_raw and float_from_raw are one algorithm at two widths, written out with the
# literal masks of the specification: they run for every number of every value decoded, and a
# width-parameterised version (constants in a closure) costs about 10 % more per call.


def sfloat_from_raw(raw: int) -> Number:
    """Decode a 16-bit SFLOAT given as an unsigned integer (0..0xFFFF)."""
    if 0x07FE <= raw <= 0x0802:
        return _SFLOAT_SPECIAL[raw]
    mantissa = raw & 0x0FFF
    if mantissa >= 0x0800:
        mantissa -= 0x1000
    exponent = raw >> 12
    if exponent >= 8:
        return mantissa / _POW10[16 - exponent]
    return float(mantissa * _POW10[exponent])


def float_from_raw(raw: int) -> Number:
    """Decode a 32-bit FLOAT given as an unsigned integer (0..0xFFFFFFFF)."""
    if 0x007FFFFE <= raw <= 0x00800002:
        return _FLOAT_SPECIAL[raw]
    mantissa = raw & 0x00FFFFFF
    if mantissa >= 0x00800000:
        mantissa -= 0x01000000
    exponent = raw >> 24
    if exponent >= 128:
        return mantissa / _POW10[256 - exponent]
    return float(mantissa * _POW10[exponent])


def parse_sfloat(data: bytes, offset: int = 0) -> Number:
    """Decode the little-endian SFLOAT at ``offset``; raise MalformedPayload if cut short."""
    if offset < 0 or len(data) - offset < 2:
        raise MalformedPayload("SFLOAT needs 2 octets", offset=offset)
    return sfloat_from_raw(data[offset] | data[offset + 1] << 8)


def parse_float(data: bytes, offset: int = 0) -> Number:
    """Decode the little-endian FLOAT at ``offset``; raise MalformedPayload if cut short."""
    if offset < 0 or len(data) - offset < 4:
        raise MalformedPayload("FLOAT needs 4 octets", offset=offset)
    return float_from_raw(int.from_bytes(data[offset : offset + 4], "little"))


def is_number(value: Number | None) -> bool:
    """True for a real number; False for None (field absent) and the reserved values."""
    return value is not None and not isinstance(value, SpecialValue)


def json_value(value: Number) -> float | str:
    """The JSON form of a decoded number: the float itself, or the special value's name."""
    if isinstance(value, SpecialValue):
        return value.value
    return value


def encode_sfloat(mantissa: int, exponent: int) -> bytes:
    """Encode mantissa x 10^exponent as SFLOAT (for requests and emulated devices).

    Refuses mantissas that collide with the reserved values at exponent 0, so an encoder can
    never produce NaN by accident.
    """
    if not -2048 <= mantissa <= 2047 or not -8 <= exponent <= 7:
        raise EncodeError(f"SFLOAT cannot hold {mantissa}e{exponent}")
    raw = (exponent & 0x0F) << 12 | (mantissa & 0x0FFF)
    if raw in _SFLOAT_SPECIAL:
        raise EncodeError(f"{mantissa}e{exponent} encodes a reserved SFLOAT value")
    return raw.to_bytes(2, "little")


def encode_sfloat_special(value: SpecialValue) -> bytes:
    """The two octets of a reserved SFLOAT value."""
    for raw, special in _SFLOAT_SPECIAL.items():
        if special is value:
            return raw.to_bytes(2, "little")
    raise EncodeError(f"unknown special value {value!r}")  # pragma: no cover - enum is closed


def encode_float(mantissa: int, exponent: int) -> bytes:
    """Encode mantissa x 10^exponent as FLOAT (32-bit)."""
    if not -(2**23) <= mantissa < 2**23 or not -128 <= exponent <= 127:
        raise EncodeError(f"FLOAT cannot hold {mantissa}e{exponent}")
    raw = (exponent & 0xFF) << 24 | (mantissa & 0x00FFFFFF)
    if raw in _FLOAT_SPECIAL:
        raise EncodeError(f"{mantissa}e{exponent} encodes a reserved FLOAT value")
    return raw.to_bytes(4, "little")

"""Encoders for the Bluetooth SIG health characteristics, as a device's firmware would write them.

Written from the GATT definitions (``docs/contract/ble-gatt-formats.md``) independently of the decoders,
so the emulated devices check the decoders rather than mirror them. All fields little-endian.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final, TypeVar

_T = TypeVar("_T")

NAN_SFLOAT: Final = b"\xff\x07"
NAN_FLOAT: Final = b"\xff\xff\x7f\x00"
_SFLOAT_MANTISSA_MAX: Final = 2045  # 2046/2047 and -2046..-2048 are reserved with exponent 0
_FLOAT_MANTISSA_MAX: Final = 0x7FFFFD


def _finest(value: float, mantissa_max: int, kind: str) -> tuple[int, int]:
    """(mantissa, exponent) with the finest exponent from -8 to 7 that holds ``value``."""
    for exponent in range(-8, 8):
        mantissa = round(value / 10.0**exponent)
        if abs(mantissa) <= mantissa_max and math.isclose(
            mantissa * 10.0**exponent, value, rel_tol=1e-9, abs_tol=10.0 ** (exponent - 1)
        ):
            return mantissa, exponent
    raise ValueError(f"{value} does not fit {kind}")


def sfloat(value: float | None) -> bytes:
    """IEEE 11073 16-bit SFLOAT; None encodes NaN. Uses the finest exponent that fits."""
    if value is None or math.isnan(value):
        return NAN_SFLOAT
    mantissa, exponent = _finest(value, _SFLOAT_MANTISSA_MAX, "an SFLOAT")
    return struct.pack("<H", ((exponent & 0x0F) << 12) | (mantissa & 0x0FFF))


def float32(value: float | None) -> bytes:
    """IEEE 11073 32-bit FLOAT; None encodes NaN. Uses the finest exponent that fits."""
    if value is None or math.isnan(value):
        return NAN_FLOAT
    mantissa, exponent = _finest(value, _FLOAT_MANTISSA_MAX, "a FLOAT")
    return struct.pack("<I", ((exponent & 0xFF) << 24) | (mantissa & 0x00FFFFFF))


def date_time(moment: datetime | None) -> bytes:
    """Date Time (0x2A08): year u16, month, day, hours, minutes, seconds; None = all unknown."""
    if moment is None:
        return bytes(7)
    return struct.pack(
        "<HBBBBB", moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second
    )


def current_time(moment: datetime | None, adjust_reason: int = 0) -> bytes:
    """Current Time (0x2A2B): Date Time, day of week (1 = Monday), Fractions256, adjust reason."""
    if moment is None:
        return bytes(10)
    fractions = moment.microsecond * 256 // 1_000_000
    return date_time(moment) + bytes((moment.isoweekday(), fractions, adjust_reason))


def parse_current_time(data: bytes) -> datetime | None:
    """The device side of a Current Time write: None when the value is not a usable time."""
    if len(data) < 7:
        return None
    year, month, day, hour, minute, second = struct.unpack_from("<HBBBBB", data)
    fractions = data[8] if len(data) >= 9 else 0
    try:
        return datetime(year, month, day, hour, minute, second, fractions * 1_000_000 // 256)
    except ValueError:
        return None


def _present(encode: Callable[[_T], bytes], value: _T | None) -> bytes | None:
    """``encode(value)``, or None for an absent field."""
    return None if value is None else encode(value)


def _u8(value: int) -> bytes:
    return bytes((value,))


def _u16(value: int) -> bytes:
    return struct.pack("<H", value)


def _flagged(flags: int, body: bytes, *optional: tuple[int, bytes | None]) -> bytes:
    """Flags octet · body · each optional field that is present (not None), in order, with its
    flag bit set: the layout the measurement encoders below share."""
    for bit, field in optional:
        if field is not None:
            flags |= bit
            body += field
    return bytes((flags,)) + body


def heart_rate(
    bpm: int, *, rr_intervals_s: Sequence[float] = (), energy_kj: int | None = None
) -> bytes:
    """Heart Rate Measurement (0x2A37), sensor contact detected."""
    wide = bpm > 0xFF
    return _flagged(
        0x07 if wide else 0x06,
        _u16(bpm) if wide else _u8(bpm),
        (0x08, None if energy_kj is None else _u16(min(energy_kj, 0xFFFF))),
        (0x10, b"".join(_u16(round(rr * 1024)) for rr in rr_intervals_s) if rr_intervals_s else None),
    )


def blood_pressure(
    systolic: float,
    diastolic: float,
    mean: float | None,
    *,
    at: datetime | None,
    pulse: float | None = None,
    user_id: int | None = None,
    status: int | None = None,
    kpa: bool = False,
) -> bytes:
    """Blood Pressure Measurement (0x2A35); pressures in mmHg (or kPa when ``kpa``)."""
    return _flagged(
        0x01 if kpa else 0x00,
        sfloat(systolic) + sfloat(diastolic) + sfloat(mean),
        (0x02, _present(date_time, at)),
        (0x04, _present(sfloat, pulse)),
        (0x08, _present(_u8, user_id)),
        (0x10, _present(_u16, status)),
    )


def intermediate_cuff_pressure(pressure: float) -> bytes:
    """Intermediate Cuff Pressure (0x2A36): current pressure, unused slots NaN."""
    return b"\x00" + sfloat(pressure) + NAN_SFLOAT + NAN_SFLOAT


def blood_pressure_record(sequence: int, measurement: bytes, *, counter: int = 0) -> bytes:
    """Blood Pressure Record (0x2B36) holding one whole 0x2A35 value in a single segment.

    Segmentation header (b0 first segment, b1 last segment, b2-7 rolling counter) · Sequence
    Number u16 · UUID u16 of the recorded characteristic · the recorded value.
    """
    header = 0x03 | ((counter & 0x3F) << 2)
    return bytes((header,)) + struct.pack("<HH", sequence, 0x2A35) + measurement


def temperature(
    value: float, *, at: datetime | None, fahrenheit: bool = False, site: int | None = None
) -> bytes:
    """Temperature Measurement (0x2A1C)."""
    return _flagged(
        0x01 if fahrenheit else 0x00,
        float32(value),
        (0x02, _present(date_time, at)),
        (0x04, _present(_u8, site)),
    )


def plx_spot_check(
    spo2: float | None, pulse: float | None, *, at: datetime | None, clock_not_set: bool = False
) -> bytes:
    """PLX Spot-Check Measurement (0x2A5E)."""
    return _flagged(
        0x10 if clock_not_set else 0x00,
        sfloat(spo2) + sfloat(pulse),
        (0x01, _present(date_time, at)),
    )


def plx_continuous(spo2: float | None, pulse: float | None) -> bytes:
    """PLX Continuous Measurement (0x2A5F), normal SpO2 and PR only."""
    return b"\x00" + sfloat(spo2) + sfloat(pulse)


def weight(
    kilograms: float, *, at: datetime | None, user_id: int | None = None, imperial: bool = False
) -> bytes:
    """Weight Measurement (0x2A9D): 0.005 kg (SI) or 0.01 lb (imperial) resolution."""
    raw = round(kilograms / 0.45359237 / 0.01) if imperial else round(kilograms / 0.005)
    return _flagged(
        0x01 if imperial else 0x00,
        _u16(raw),
        (0x02, _present(date_time, at)),
        (0x04, _present(_u8, user_id)),
    )


def glucose(
    sequence: int,
    base_time: datetime | None,
    mg_dl: float,
    *,
    time_offset_min: int | None = None,
    sample_type: int = 1,
    location: int = 1,
    status: int | None = None,
    context_follows: bool = False,
) -> bytes:
    """Glucose Measurement (0x2A18), concentration in kg/L (mg/dL = kg/L x 100 000)."""
    return _flagged(
        0x10 if context_follows else 0x00,
        _u16(sequence) + date_time(base_time),
        (0x01, None if time_offset_min is None else struct.pack("<h", time_offset_min)),
        (0x02, sfloat(mg_dl / 100_000) + _u8((location << 4) | sample_type)),
        (0x08, _present(_u16, status)),
    )


def glucose_context(sequence: int, *, meal: int) -> bytes:
    """Glucose Measurement Context (0x2A34) with the Meal field (1 preprandial … 5 bedtime)."""
    return b"\x02" + struct.pack("<H", sequence) + bytes((meal,))


def racp_response(request_op_code: int, response_code: int) -> bytes:
    """RACP Response Code (op 0x06, operator null)."""
    return bytes((0x06, 0x00, request_op_code, response_code))


def racp_count(count: int) -> bytes:
    """RACP Number of Stored Records Response (op 0x05, operator null, uint16)."""
    return b"\x05\x00" + struct.pack("<H", count)

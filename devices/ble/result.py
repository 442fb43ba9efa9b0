"""What every decoder returns: the decoded fields and the canonical measurements they carry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from devices.ble.reader import Reader
from devices.units import to_canonical

# The canonical (UCUM) unit of each metric the decoders emit; a test pins this table to
# data/metrics.csv, so the decoders need no file access at run time.
CANONICAL_UNITS: Final[dict[str, str]] = {
    "heart_rate": "/min",
    "spo2": "%",
    "body_temperature": "Cel",
    "systolic_bp": "mm[Hg]",
    "diastolic_bp": "mm[Hg]",
    "mean_arterial_pressure": "mm[Hg]",
    "body_weight": "kg",
    "blood_glucose": "mg/dL",
}

# Significant digits kept after a unit conversion: drops binary noise such as
# 0.001 kg/L -> 100.00000000000001 mg/dL, far below any device's resolution.
_CONVERTED_DIGITS: Final = 12


@dataclass(frozen=True, slots=True)
class Measurement:
    """One canonical measurement decoded from a GATT value.

    ``value`` is in ``unit``, the metric's canonical unit; ``original_value`` and
    ``original_unit`` (UCUM) are what the device sent. ``measured_at`` is the device's own
    timestamp as a naive device-local datetime, or None when the value carries none (or an
    unknown/invalid one): the gateway resolves it to an aware time. ``status`` holds the
    device's status flags (snake_case) that apply to this measurement.
    """

    metric: str
    value: float
    unit: str
    measured_at: datetime | None
    original_value: float
    original_unit: str
    status: tuple[str, ...] = ()
    user_id: int | None = None
    """The device's user index (BP cuffs and scales shared by several people; 255 = unknown)."""
    time_offset: timedelta | None = None
    """CGM only: time since the sensor session started (the record carries no clock time)."""


@dataclass(frozen=True, slots=True)
class DecodeResult:
    """A decoded GATT value.

    ``characteristic`` is the 16-bit UUID as four lowercase hex digits (``"2a37"``), ``name``
    the characteristic's snake_case name, ``fields`` every decoded field as JSON-friendly
    values (reserved IEEE 11073 values appear as "NaN", "NRes", "+INF", "-INF", "RFU";
    absent optional fields as None). Treat ``fields`` as read-only.
    """

    characteristic: str
    name: str
    fields: dict[str, Any]
    measurements: tuple[Measurement, ...] = ()


def measurement(
    metric: str,
    value: float,
    unit: str,
    measured_at: datetime | None,
    status: Sequence[str] = (),
    *,
    user_id: int | None = None,
    time_offset: timedelta | None = None,
) -> Measurement:
    """Build a measurement from a device value in ``unit`` (UCUM), converting to canonical."""
    canonical = CANONICAL_UNITS[metric]
    converted = value
    if unit != canonical:
        converted = float(f"{to_canonical(metric, value, unit):.{_CONVERTED_DIGITS}g}")
    flags = tuple(status) if status else ()
    return Measurement(metric, converted, canonical, measured_at, value, unit, flags, user_id, time_offset)


def bit_flags(raw: int, table: Sequence[tuple[int, str]]) -> list[str]:
    """Names of the bits set in ``raw``, in table order."""
    return [name for bit, name in table if raw & bit]


def flags_field(raw: int, table: Sequence[tuple[int, str]]) -> dict[str, Any]:
    """The JSON form of a status bit field: the raw value and the names of the set bits."""
    return {"raw": raw, "flags": bit_flags(raw, table)}


def status_field(
    raw: int | None, table: Sequence[tuple[int, str]], status: list[str]
) -> dict[str, Any] | None:
    """The JSON form of an optional status bit field (None when absent); the names of its set
    bits are also added to ``status``, the flags that travel with the measurements."""
    if raw is None:
        return None
    names = bit_flags(raw, table)
    status.extend(names)
    return {"raw": raw, "flags": names}


def time_stamp(
    r: Reader, present: bool, field: str, fields: dict[str, Any], status: list[str]
) -> datetime | None:
    """Read an optional Date Time ``field`` into ``fields["timestamp"]``; return its value.

    Absent: ``timestamp`` is None. Present but not a usable time (unknown or outside the
    calendar): ``timestamp`` is None, its raw parts go to ``timestamp_fields`` and
    ``device_time_unknown`` is added to ``status``.
    """
    if not present:
        fields["timestamp"] = None
        return None
    stamp = r.date_time(field)
    stamp.describe("timestamp", fields)
    if stamp.value is None:
        status.append("device_time_unknown")
    return stamp.value

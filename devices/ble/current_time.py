"""Date Time (0x2A08) and Current Time (0x2A2B, Current Time service 0x1805) values.

Current Time: Date Time (7) · Day of Week u8 (1 Monday .. 7 Sunday, 0 unknown) · Fractions256
u8 (1/256 s) · Adjust Reason u8 (b0 manual, b1 external reference, b2 time zone, b3 DST).
No readings: these values tell the device's clock, which the gateway compares with its own.
"""

from __future__ import annotations

from typing import Any, Final

from devices.ble.date_time import ADJUST_REASON_FLAGS, DAY_OF_WEEK_NAMES
from devices.ble.reader import Reader
from devices.ble.result import DecodeResult, flags_field

DATE_TIME_CHARACTERISTIC: Final = "2a08"
CURRENT_TIME_CHARACTERISTIC: Final = "2a2b"


def decode_date_time(data: bytes) -> DecodeResult:
    r = Reader(data, "Date Time")
    stamp = r.date_time("Date Time")
    r.end()
    fields: dict[str, Any] = {"timestamp": None if stamp.value is None else stamp.value.isoformat()}
    fields.update(stamp.raw_fields())
    return DecodeResult(DATE_TIME_CHARACTERISTIC, "date_time", fields)


def decode_current_time(data: bytes) -> DecodeResult:
    r = Reader(data, "Current Time")
    stamp = r.date_time("Exact Time 256 / Date Time")
    day_of_week = r.u8("Day of Week")
    fractions = r.u8("Fractions256")
    reason = r.u8("Adjust Reason")
    r.end()
    fields: dict[str, Any] = {"timestamp": None if stamp.value is None else stamp.value.isoformat()}
    fields.update(stamp.raw_fields())
    fields["day_of_week"] = day_of_week
    fields["day_of_week_name"] = (
        DAY_OF_WEEK_NAMES[day_of_week] if day_of_week < len(DAY_OF_WEEK_NAMES) else "reserved"
    )
    fields["fractions256"] = fractions
    fields["adjust_reason"] = flags_field(reason, ADJUST_REASON_FLAGS)
    return DecodeResult(CURRENT_TIME_CHARACTERISTIC, "current_time", fields)

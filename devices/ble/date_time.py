"""Date Time (0x2A08) and Current Time (0x2A2B): the device's wall clock, without a time zone.

Date Time is 7 octets: year uint16 (0 = not known), month, day (0 = not known), hours, minutes,
seconds. It is embedded as the "Time Stamp" of most health measurements. The value is the
device's local time: it stays a naive ``datetime`` here, and the gateway decides what it means.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from devices.errors import EncodeError, MalformedPayload

DATE_TIME_SIZE: Final = 7
CURRENT_TIME_SIZE: Final = 10
MIN_YEAR: Final = 1582
MAX_YEAR: Final = 9999

DAY_OF_WEEK_NAMES: Final = (
    "unknown",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)
# Current Time "Adjust Reason" bits
ADJUST_REASON_FLAGS: Final = (
    (0x01, "manual_time_update"),
    (0x02, "external_reference_time_update"),
    (0x04, "change_of_time_zone"),
    (0x08, "change_of_dst"),
)


@dataclass(frozen=True, slots=True)
class DeviceTime:
    """The raw Date Time fields and, when they name a real instant, the naive datetime."""

    year: int
    month: int
    day: int
    hours: int
    minutes: int
    seconds: int
    value: datetime | None

    def raw_fields(self) -> dict[str, int]:
        return {
            "year": self.year,
            "month": self.month,
            "day": self.day,
            "hours": self.hours,
            "minutes": self.minutes,
            "seconds": self.seconds,
        }

    def describe(self, name: str, out: dict[str, Any]) -> None:
        """Add ``name`` (ISO text or None) to a fields dict; raw parts too when it is unusable."""
        if self.value is None:
            out[name] = None
            out[name + "_fields"] = self.raw_fields()
        else:
            out[name] = self.value.isoformat()


def device_time_at(data: bytes, offset: int) -> DeviceTime:
    """Decode the 7-octet Date Time at ``offset`` (the caller checked the length).

    An unknown (0) year, month or day, or values outside the calendar, give ``value=None``:
    the measurement keeps its raw time parts but has no usable device time.
    """
    year = data[offset] | data[offset + 1] << 8
    month = data[offset + 2]
    day = data[offset + 3]
    hours = data[offset + 4]
    minutes = data[offset + 5]
    seconds = data[offset + 6]
    value: datetime | None = None
    if MIN_YEAR <= year <= MAX_YEAR and month and day:
        try:
            value = datetime(year, month, day, hours, minutes, seconds)
        except ValueError:
            value = None
    return DeviceTime(year, month, day, hours, minutes, seconds, value)


def parse_date_time(data: bytes, offset: int = 0) -> DeviceTime:
    """Decode a Date Time value, checking its length."""
    if offset < 0 or len(data) - offset < DATE_TIME_SIZE:
        raise MalformedPayload(
            f"Date Time needs {DATE_TIME_SIZE} octets, {max(len(data) - offset, 0)} left",
            offset=offset,
        )
    return device_time_at(data, offset)


def encode_date_time(moment: datetime) -> bytes:
    """The 7 Date Time octets of ``moment``'s wall-clock fields (any tzinfo is not encoded)."""
    if not MIN_YEAR <= moment.year <= MAX_YEAR:
        raise EncodeError(f"Date Time cannot hold year {moment.year}")
    return bytes(
        (
            moment.year & 0xFF,
            moment.year >> 8,
            moment.month,
            moment.day,
            moment.hour,
            moment.minute,
            moment.second,
        )
    )


def encode_current_time(moment: datetime, *, adjust_reason: int = 0) -> bytes:
    """The 10 Current Time octets for ``moment``, already in the device's local time.

    Day of week comes from the date, Fractions256 from the microseconds.
    """
    if not 0 <= adjust_reason <= 0xFF:
        raise EncodeError(f"adjust reason {adjust_reason} does not fit one octet")
    fractions256 = moment.microsecond * 256 // 1_000_000
    return encode_date_time(moment) + bytes((moment.isoweekday(), fractions256, adjust_reason))

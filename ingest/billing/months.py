"""Months and clinic time zones as the billing API takes them (pure: no clock, no I/O).

A month is ``YYYY-MM`` with a two-digit month (``2026-13``, ``2026-1`` and ``july`` are refused);
a clinic's time zone is an IANA name the time zone database knows (``America/New_York``).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo, available_timezones

from ingest.billing.errors import InvalidMonth, InvalidTimeZone

_MONTH_RE: Final = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")  # ASCII digits only
DEFAULT_TIMEZONE: Final = "UTC"
#: Files of a system zoneinfo directory that are not zones of a place.
_NOT_ZONES: Final = frozenset({"localtime", "posixrules", "Factory", "posix", "right"})


@dataclass(frozen=True, slots=True, order=True)
class Month:
    year: int
    month: int

    @property
    def first_day(self) -> date:
        return _first_day(self.year, self.month)

    @property
    def last_day(self) -> date:
        return _last_day(self.year, self.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @classmethod
    def of(cls, day: date) -> Month:
        return cls(day.year, day.month)


@lru_cache(maxsize=64)
def _first_day(year: int, month: int) -> date:
    return date(year, month, 1)


@lru_cache(maxsize=64)
def _last_day(year: int, month: int) -> date:  # asked for every period of a report: cached
    return date(year, month, calendar.monthrange(year, month)[1])


def parse_month(text: str) -> Month:
    """``YYYY-MM`` (month 01–12, year 2000–9999) or :class:`InvalidMonth` saying what to send."""
    match = _MONTH_RE.fullmatch(text)
    if match is None or int(match.group(1)) < 2000:
        shown = text[:20]
        raise InvalidMonth(f"month must be YYYY-MM with a two-digit month 01-12 (got {shown!r})")
    return Month(int(match.group(1)), int(match.group(2)))


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    return frozenset(z for z in available_timezones() if z.split("/")[0] not in _NOT_ZONES)


def validate_timezone(name: str) -> str:
    """The IANA name itself when the time zone database knows it; :class:`InvalidTimeZone` else.

    Only names listed by the database are taken (not file paths, not ``localtime``), so a name
    stored here means the same zone to Python and to PostgreSQL (both use the IANA database).
    """
    if name not in _known_zones():
        raise InvalidTimeZone(
            f"unknown time zone {name[:64]!r}: give an IANA name such as 'America/New_York' or 'UTC'"
        )
    return name


def local_today(now: datetime, timezone: str) -> date:
    """The clinic-local date at the aware instant ``now``."""
    return now.astimezone(ZoneInfo(timezone)).date()

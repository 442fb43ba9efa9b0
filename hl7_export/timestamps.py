"""HL7 v2 DTM values with their offset (``YYYYMMDDHHMMSS[.SSSS]+ZZZZ``) and back."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

_DTM: Final = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,4}))?([+-]\d{4})?$")


def format_dtm(moment: datetime) -> str:
    """``moment`` (aware) as a DTM in UTC with ``+0000``, to the 1/10,000 s HL7 allows."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    u = moment.astimezone(UTC)
    text = f"{u.year:04d}{u.month:02d}{u.day:02d}{u.hour:02d}{u.minute:02d}{u.second:02d}"
    if u.microsecond:
        text += f".{u.microsecond // 100:04d}"
    return text + "+0000"


def parse_dtm(text: str) -> datetime | None:
    """A DTM (any precision) as an aware datetime; no offset means UTC. ``None`` if not a DTM."""
    match = _DTM.match(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        tz = UTC
        if offset:
            sign = -1 if offset[0] == "-" else 1
            tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
        return datetime(
            int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0),
            int(second or 0), int((fraction or "0").ljust(4, "0")) * 100, tzinfo=tz,
        )  # fmt: skip
    except ValueError:
        return None

"""A bounds-checked little-endian cursor over one GATT value.

Every read checks the remaining length first and raises :class:`MalformedPayload` naming the
field, the octet offset and what was missing, so no ``IndexError`` or ``struct.error`` can
escape a decoder.
"""

from __future__ import annotations

import logging
from typing import Final

from devices.ble.date_time import DATE_TIME_SIZE, DeviceTime, device_time_at
from devices.ble.ieee11073 import Number, float_from_raw, sfloat_from_raw
from devices.errors import MalformedPayload

logger = logging.getLogger(__name__)

# ATT caps an attribute value at 512 octets (Core Specification Vol 3, Part F, 3.2.9).
MAX_VALUE_SIZE: Final = 512


class Reader:
    """Reads fields in order from ``data``; ``what`` names the characteristic in errors."""

    __slots__ = ("data", "pos", "what")

    def __init__(self, data: bytes, what: str) -> None:
        if len(data) > MAX_VALUE_SIZE:
            raise MalformedPayload(
                f"{what}: {len(data)} octets is over the {MAX_VALUE_SIZE}-octet attribute limit",
                offset=MAX_VALUE_SIZE,
            )
        self.data = data
        self.pos = 0
        self.what = what

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def _short(self, field: str, size: int) -> MalformedPayload:
        left = len(self.data) - self.pos
        return MalformedPayload(
            f"{self.what}: {field} needs {size} octet{'s' if size > 1 else ''}, "
            f"{left} left of {len(self.data)}",
            offset=self.pos,
        )

    def u8(self, field: str) -> int:
        pos = self.pos
        if pos >= len(self.data):
            raise self._short(field, 1)
        self.pos = pos + 1
        return self.data[pos]

    def u16(self, field: str) -> int:
        pos = self.pos
        data = self.data
        if len(data) - pos < 2:
            raise self._short(field, 2)
        self.pos = pos + 2
        return data[pos] | data[pos + 1] << 8

    def s16(self, field: str) -> int:
        value = self.u16(field)
        return value - 0x10000 if value >= 0x8000 else value

    def u24(self, field: str) -> int:
        pos = self.pos
        data = self.data
        if len(data) - pos < 3:
            raise self._short(field, 3)
        self.pos = pos + 3
        return data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16

    def sfloat(self, field: str) -> Number:
        return sfloat_from_raw(self.u16(field))

    def float32(self, field: str) -> Number:
        pos = self.pos
        data = self.data
        if len(data) - pos < 4:
            raise self._short(field, 4)
        self.pos = pos + 4
        return float_from_raw(int.from_bytes(data[pos : pos + 4], "little"))

    def date_time(self, field: str) -> DeviceTime:
        pos = self.pos
        if len(self.data) - pos < DATE_TIME_SIZE:
            raise self._short(field, DATE_TIME_SIZE)
        self.pos = pos + DATE_TIME_SIZE
        return device_time_at(self.data, pos)

    def need(self, size: int, field: str) -> None:
        """Check that ``size`` more octets are there, without reading them."""
        if len(self.data) - self.pos < size:
            raise self._short(field, size)

    def error(self, reason: str, offset: int | None = None) -> MalformedPayload:
        """An error about this value at ``offset`` (default: the current position)."""
        return MalformedPayload(f"{self.what}: {reason}", offset=self.pos if offset is None else offset)

    def end(self) -> None:
        """Finish: extra octets are tolerated (newer revisions append fields) but noted."""
        extra = len(self.data) - self.pos
        if extra > 0:
            logger.debug("%s: ignoring %d trailing octet(s) at offset %d", self.what, extra, self.pos)

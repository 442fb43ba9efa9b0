"""Building ER7 messages with python-hl7's containers (fields by position, values escaped).

A :class:`SegmentBuilder` fills one segment through :meth:`hl7.Segment.assign_field`; every value
goes through :func:`hl7_export.escaping.escape` on the way in, so text can never break the
structure of the message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import hl7

from hl7_export.escaping import escape

SEPARATORS: Final = "\r|~^&"
ENCODING_CHARACTERS: Final = "^~\\&"


def new_message() -> hl7.Message:
    return hl7.Message("\r", [], esc="\\", separators=SEPARATORS, factory=hl7.Factory)


class SegmentBuilder:
    """One segment being built: ``set(3, "a", "b")`` puts components a^b in field 3."""

    def __init__(self, message: hl7.Message, name: str) -> None:
        self.segment = message.create_segment([message.create_field([name])])
        if name == "MSH":
            self.segment.assign_field("|", 1)
            self.segment.assign_field(ENCODING_CHARACTERS, 2)

    def set(self, field: int, *components: str) -> SegmentBuilder:
        """Field ``field`` with these components (trailing empty ones dropped)."""
        values = list(components)
        while values and not values[-1]:
            values.pop()
        if len(values) == 1:
            self.segment.assign_field(escape(values[0]), field)
        else:
            for n, value in enumerate(values, start=1):
                self.segment.assign_field(escape(value), field, 1, n)
        return self

    def set_raw(self, field: int, *components: str) -> SegmentBuilder:
        """Like :meth:`set` for values that are already valid ER7 (coded, numeric, dates)."""
        for n, value in enumerate(components, start=1):
            if len(components) == 1:
                self.segment.assign_field(value, field)
            else:
                self.segment.assign_field(value, field, 1, n)
        return self


def assemble(message: hl7.Message, segments: Sequence[SegmentBuilder]) -> hl7.Message:
    message.extend(builder.segment for builder in segments)
    return message


def encode(message: hl7.Message) -> bytes:
    """The message as UTF-8 ER7 (segments ended by ``\\r``), ready for an MLLP frame."""
    return str(message).encode("utf-8")

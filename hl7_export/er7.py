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
    """One segment being built: ``set(3, "a", "b")`` puts components a^b in field 3.

    Fields are collected by position and made into python-hl7 containers once, in
    :attr:`segment` (field -> repetition -> components), which renders them with the message's
    separators.
    """

    def __init__(self, message: hl7.Message, name: str) -> None:
        self._message = message
        self._name = name
        self._fields: dict[int, tuple[str, ...]] = {}

    def set(self, field: int, *components: str) -> SegmentBuilder:
        """Field ``field`` with these components (trailing empty ones dropped), escaped."""
        return self.set_raw(field, *(escape(value) for value in components))

    def set_raw(self, field: int, *components: str) -> SegmentBuilder:
        """Like :meth:`set` for values that are already valid ER7 (coded, numeric, dates)."""
        values = list(components)
        while values and not values[-1]:
            values.pop()
        self._fields[field] = tuple(values)
        return self

    @property
    def segment(self) -> hl7.Segment:
        """The segment as python-hl7 containers: a field with components is a Field holding one
        Repetition of them; a plain value (or an empty field) stays a string, which the segment
        renders as it is."""
        m = self._message
        is_msh = self._name == "MSH"
        last = max(self._fields, default=0)
        fields: list[object] = [m.create_field([self._name])]
        if is_msh:
            fields += ["|", ENCODING_CHARACTERS]
        for number in range(3 if is_msh else 1, last + 1):
            values = self._fields.get(number, ())
            if len(values) <= 1:
                fields.append(values[0] if values else "")
            else:
                fields.append(m.create_field([m.create_repetition(list(values))]))
        return m.create_segment(fields)


def assemble(message: hl7.Message, segments: Sequence[SegmentBuilder]) -> hl7.Message:
    message.extend(builder.segment for builder in segments)
    return message


def encode(message: hl7.Message) -> bytes:
    """The message as UTF-8 ER7 (segments ended by ``\\r``), ready for an MLLP frame."""
    return str(message).encode("utf-8")

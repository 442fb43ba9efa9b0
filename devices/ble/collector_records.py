"""Blood Pressure Record (0x2B36) framing: pure, no I/O.

Blood Pressure Service 1.1 hands stored measurements out through RACP as Blood Pressure Record
values: Segmentation Header u8 (b0 first segment, b1 last segment, b2-7 rolling segment counter)
followed by a segment of the record, which (reassembled) is Sequence Number u16 · UUID u16 of the
recorded characteristic (0x2A35 here) · the recorded value. A record that fits one ATT payload
is a single segment with both b0 and b1 set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from devices.errors import MalformedPayload

BP_RECORD_UUID: Final = 0x2B36
_MAX_RECORD: Final = 1024


@dataclass(frozen=True, slots=True)
class RecordValue:
    sequence: int
    uuid: int
    """16-bit UUID of the recorded characteristic."""
    value: bytes


class RecordAssembler:
    """Reassembles segmented Blood Pressure Record values; one instance per link."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._counter: int | None = None

    def feed(self, data: bytes) -> RecordValue | None:
        """Add one 0x2B36 value; the record when it is complete, else None.

        Raises :class:`MalformedPayload` for a value that breaks the framing (and forgets any
        partial record, so one bad segment does not poison the next record).
        """
        if not data:
            raise MalformedPayload("Blood Pressure Record: empty value", offset=0)
        header = data[0]
        first, last, counter = bool(header & 0x01), bool(header & 0x02), header >> 2
        if first:
            if self._parts:
                self._reset()
                raise MalformedPayload("Blood Pressure Record: new record before the last ended", offset=0)
        elif not self._parts:
            raise MalformedPayload("Blood Pressure Record: continuation without a first segment", offset=0)
        elif self._counter is not None and counter != (self._counter + 1) & 0x3F:
            self._reset()
            raise MalformedPayload("Blood Pressure Record: segment out of order", offset=0)
        self._parts.append(data[1:])
        self._counter = counter
        if sum(len(p) for p in self._parts) > _MAX_RECORD:
            self._reset()
            raise MalformedPayload(f"Blood Pressure Record: over {_MAX_RECORD} octets", offset=1)
        if not last:
            return None
        body = b"".join(self._parts)
        self._reset()
        return parse_record(body)

    def _reset(self) -> None:
        self._parts = []
        self._counter = None


def parse_record(body: bytes) -> RecordValue:
    """A reassembled record: sequence number, recorded UUID, recorded value (at least 1 octet)."""
    if len(body) < 5:
        raise MalformedPayload(
            f"Blood Pressure Record: needs sequence number, UUID and a value, got {len(body)} octets",
            offset=1 + len(body),
        )
    sequence = int.from_bytes(body[0:2], "little")
    uuid = int.from_bytes(body[2:4], "little")
    return RecordValue(sequence, uuid, bytes(body[4:]))

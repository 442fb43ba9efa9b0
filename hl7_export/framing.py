"""MLLP framing (``0x0B`` message ``0x1C 0x0D``), written for a listener that meets hostile input.

python-hl7's stream reader suits a trusted peer; on a block past its limit it clears its buffer and
loses the frame boundary, so the rest of that block would be read as garbage. :class:`Deframer`
keeps the boundary: it is fed bytes as they arrive and hands back whole frames, reports an
oversized frame once it has been skipped to its end, and counts bytes outside any frame. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

START: Final = b"\x0b"
END: Final = b"\x1c\x0d"


def frame(payload: bytes) -> bytes:
    return START + payload + END


@dataclass(frozen=True, slots=True)
class Frame:
    payload: bytes


@dataclass(frozen=True, slots=True)
class Oversized:
    size: int  # bytes skipped (at least the limit)


@dataclass(frozen=True, slots=True)
class Broken:
    """A frame cut short by a new start block: answered, never silently dropped."""

    payload: bytes


Event = Frame | Oversized | Broken


class Deframer:
    def __init__(self, max_frame_bytes: int) -> None:
        if max_frame_bytes < 16:
            raise ValueError("max_frame_bytes too small")
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        self._inside = False
        self._skipping = 0  # > 0: inside an oversized frame, this many bytes skipped so far
        self.garbage_bytes = 0

    @property
    def in_frame(self) -> bool:
        """A frame has started and not ended (a client is mid-message)."""
        return self._inside

    def feed(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        self._buffer += data
        while self._buffer:
            if not self._inside:
                start = self._buffer.find(START)
                if start < 0:
                    self.garbage_bytes += len(self._buffer)
                    self._buffer.clear()
                    break
                self.garbage_bytes += start
                del self._buffer[: start + 1]
                self._inside = True
                continue
            end = self._buffer.find(END)
            restart = self._buffer.find(START, 0, end if end >= 0 else len(self._buffer))
            if restart >= 0 and not self._skipping:
                events.append(Broken(bytes(self._buffer[:restart])))
                del self._buffer[: restart + 1]
                continue
            if end < 0:
                # Keep a trailing 0x1C: its 0x0D may come in the next read.
                keep = 1 if self._buffer.endswith(b"\x1c") else 0
                if self._skipping or len(self._buffer) - keep > self.max_frame_bytes:
                    self._skipping += len(self._buffer) - keep
                    del self._buffer[: len(self._buffer) - keep]
                break
            if self._skipping or end > self.max_frame_bytes:
                events.append(Oversized(self._skipping + end))
            else:
                events.append(Frame(bytes(self._buffer[:end])))
            del self._buffer[: end + len(END)]
            self._inside = False
            self._skipping = 0
        return events

"""The emulated record devices' numbering, kept in a file so that it survives a restart.

A real blood-pressure cuff or glucose meter numbers its stored records across power cycles; only
a factory reset starts it again at 1 (which the collector notices and reports). The gateway's
record cursor relies on that. The emulated devices live in memory, so a :class:`RecordNumbering`
keeps each one's next sequence number in a small JSON file (``{"<address>": <next>}``): an
emulated home started again with the same file carries on where it stopped, like a real one.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

_SEQUENCE_MASK = 0xFFFF


class RecordNumbering:
    """Next sequence numbers by device address, written through to ``path`` on every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._next = _read(path)

    def next_sequence(self, address: str, default: int = 1) -> int:
        """The sequence number the device's next record takes (``default`` if it has none yet)."""
        with self._lock:
            return self._next.get(address.upper(), default)

    def advance(self, address: str, next_sequence: int) -> None:
        """Remember the device's next sequence number."""
        with self._lock:
            self._next[address.upper()] = next_sequence & _SEQUENCE_MASK
            _write(self.path, self._next)


def _read(path: Path) -> dict[str, int]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        logger.warning("emulated record numbering in %s unreadable (%s): starting afresh", path, exc)
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        str(address).upper(): value & _SEQUENCE_MASK
        for address, value in data.items()
        if isinstance(value, int) and not isinstance(value, bool)
    }


def _write(path: Path, numbering: dict[str, int]) -> None:
    """Replace the file in one step, so a stop half-way through never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(numbering, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, path)

"""Counts since start that several sender threads add to at once (read by /metrics and the
benchmarks): the outbox senders' statistics derive from :class:`Counters` and declare their
counts as ``int`` fields starting at 0."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class Counters:
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, kw_only=True)

    def add(self, **counts: int) -> None:
        """Add to the named counts, all under one lock (a reader never sees half a round)."""
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

"""A named daemon thread running one loop until it is asked to stop: the start and stop that the
service's background loops (alert scheduler, alert event broadcaster, ...) share."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)


class BackgroundThread:
    """Runs ``loop`` on a daemon thread; the loop returns once ``stopping`` is set."""

    def __init__(self, name: str, loop: Callable[[], None], *, join_timeout_s: float = 30) -> None:
        self.name = name
        self.stopping = threading.Event()
        self._loop = loop
        self._join_timeout_s = join_timeout_s
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the loop on a new thread; nothing while it runs already. A loop asked to stop
        that has not returned yet (its ``stop`` timed out) is waited for first (at most
        ``join_timeout_s``); should it still run, the start is refused with a warning, so that
        two loops never run side by side."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            if not self.stopping.is_set():
                return  # running
            thread.join(timeout=self._join_timeout_s)
            if thread.is_alive():
                logger.warning("%s not started: its previous loop has not stopped yet", self.name)
                return
        self.stopping.clear()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Set ``stopping`` and wait for the loop to return (at most ``join_timeout_s``). A loop
        that has not returned by then is kept track of (a later ``start`` waits for it)."""
        self.stopping.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=self._join_timeout_s)
            if thread.is_alive():
                logger.warning("%s did not stop within %.0f s", self.name, self._join_timeout_s)
                return
            self._thread = None

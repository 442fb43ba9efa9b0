"""What a worker of ``serve --workers N`` does differently from a lone ``serve``.

- It serves on the socket its parent bound (``--listen-fd``) instead of binding its own.
- Ctrl-C in a terminal reaches the whole process group: a worker stops on its own SIGINT, and the
  SIGTERM its parent forwards is the same clean stop (a second Ctrl-C stops waiting for open
  HTTP connections, as with a lone ``serve``).
- It stops cleanly when its parent is gone (the parent was SIGKILLed: nothing would forward a
  stop or restart it), instead of running on as an orphan nobody supervises.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from typing import Final

logger = logging.getLogger(__name__)

_PARENT_CHECK_S: Final = 1.0


def inherited_socket(fd: int) -> socket.socket:
    """The parent's listening socket (address family and type read from the descriptor)."""
    return socket.socket(fileno=fd)


def watch_parent(parent_pid: int) -> None:
    """Stop cleanly (SIGTERM to ourselves) once ``parent_pid`` is no longer our parent."""

    def watch() -> None:
        stop = threading.Event()
        while not stop.wait(_PARENT_CHECK_S):
            if os.getppid() != parent_pid:
                logger.warning("the parent process %d is gone: stopping", parent_pid)
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()

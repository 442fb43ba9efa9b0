"""A read-buffered TCP socket for a receiving MQTT client (no paho here: the client subclass that
installs it is in :mod:`devices.mqtt.client`).

paho-mqtt reads a packet in three or more ``recv`` calls (the command byte, each byte of the
remaining length, then the rest) and goes once through its ``select`` loop per packet. A consumer
receiving thousands of small PUBLISH packets a second spends most of its network thread there:
profiled under a 40,000-message burst, paho's thread held the interpreter lock 73 % of the time.
This wrapper fills one buffer of up to 64 KiB per system call and serves the small reads from it;
``pending()`` tells paho's loop that bytes are waiting (the same protocol paho already follows for
TLS sockets, whose records are buffered by the SSL layer), so it reads the next packet at once.
"""

from __future__ import annotations

import socket
from typing import Any, Final

READ_SIZE: Final = 64 * 1024


class BufferedSocket:
    """Wraps a connected TCP socket; ``recv`` reads ahead, everything else goes to the socket."""

    __slots__ = ("_sock", "_buf", "_pos", "_read_size")

    def __init__(self, sock: socket.socket, *, read_size: int = READ_SIZE) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0
        self._read_size = read_size

    def recv(self, bufsize: int) -> bytes:
        """Up to ``bufsize`` bytes: from the buffer, or from one read of up to ``read_size``.

        Like ``socket.recv``: fewer bytes than asked is normal, ``b""`` means the peer closed, and
        a non-blocking socket with nothing to read raises :class:`BlockingIOError`.
        """
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            buf = self._sock.recv(self._read_size)
            if not buf:
                return buf
            pos = 0
        end = min(pos + bufsize, len(buf))
        self._buf, self._pos = buf, end
        return buf[pos:end]

    def pending(self) -> int:
        """Bytes read from the socket and not yet handed out."""
        return len(self._buf) - self._pos

    def fileno(self) -> int:
        return self._sock.fileno()

    def __getattr__(self, name: str) -> Any:
        # send, setblocking, setsockopt, close... are the socket's own
        return getattr(self._sock, name)

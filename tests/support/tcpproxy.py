"""A real TCP proxy for failure injection: cut every connection and refuse new ones, then restore.

Put it between the service and PostgreSQL to make the database unreachable, or between the
service and the broker. A tap sees the bytes in both directions (``MqttTap`` reads MQTT packets:
it can check each acknowledgement before letting it through, or drop it and cut the link).
"""

from __future__ import annotations

import logging
import select
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

CLIENT_TO_SERVER = "c2s"
SERVER_TO_CLIENT = "s2c"

# A tap gets (link, direction, data) and returns the bytes to forward.
Tap = Callable[["Link", str, bytes], bytes]


@dataclass(eq=False)
class Link:
    client: socket.socket
    server: socket.socket
    state: dict[str, object] = field(default_factory=dict)
    closed: bool = False

    def close(self) -> None:
        self.closed = True
        for s in (self.client, self.server):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *, tap: Tap | None = None) -> None:
        self.target = (target_host, target_port)
        self.tap = tap
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self._links: set[Link] = set()
        self._lock = threading.Lock()
        self._up = threading.Event()
        self._up.set()
        self._stopping = False
        self.connections = 0
        self._acceptor = threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True)

    def __enter__(self) -> TcpProxy:
        self._acceptor.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping = True
        self._listener.close()
        self.cut()

    @property
    def is_up(self) -> bool:
        return self._up.is_set()

    def cut(self) -> None:
        """Close every proxied connection and refuse new ones until :meth:`restore`."""
        self._up.clear()
        with self._lock:
            links = list(self._links)
            self._links.clear()
        for link in links:
            link.close()

    def restore(self) -> None:
        self._up.set()

    def drop(self, link: Link) -> None:
        """Close one connection (the peer sees a network failure)."""
        with self._lock:
            self._links.discard(link)
        link.close()

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._up.is_set():
                client.close()  # unreachable: the connection is refused at once
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            link = Link(client, server)
            with self._lock:
                self._links.add(link)
                self.connections += 1
            threading.Thread(target=self._pump, args=(link,), name="proxy-pump", daemon=True).start()

    def _pump(self, link: Link) -> None:
        peers = {link.client: (link.server, CLIENT_TO_SERVER), link.server: (link.client, SERVER_TO_CLIENT)}
        try:
            while not link.closed:
                readable, _, _ = select.select(list(peers), [], [], 0.5)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionError("peer closed")
                    target, direction = peers[sock]
                    if self.tap is not None:
                        data = self.tap(link, direction, data)
                        if link.closed:
                            raise ConnectionError("tap closed the link")
                    if data:
                        target.sendall(data)
        except (OSError, ValueError, ConnectionError):
            pass
        finally:
            self.drop(link)

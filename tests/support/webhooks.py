"""Real local HTTP servers (on 127.0.0.1) that webhooks are delivered to, for the webhook tests."""

from __future__ import annotations

import ipaddress
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from ingest.alerts.webhook_policy import IPAddress

LARGE_BODY_BYTES: Final = 1024 * 1024 * 1024  # what the firehose promises to send (1 GiB)


class _Server:
    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/rpm"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Receiver(_Server):
    """Records every request (POST or GET) and answers with the scripted status codes (then 200);
    ``location`` adds a ``Location`` header (a redirect when the status is 3xx)."""

    def __init__(self, statuses: list[int], *, location: str | None = None) -> None:
        self.statuses = statuses
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    code = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(code)
                if location is not None:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST  # noqa: N815 - http.server's naming

            def log_message(self, *_: Any) -> None:
                pass

        super().__init__(Handler)


class Firehose(_Server):
    """Answers 200 announcing :data:`LARGE_BODY_BYTES` and writes zeros until the client stops
    reading; ``sent`` is what the socket accepted, ``cut_off`` whether the client closed first."""

    def __init__(self) -> None:
        self.requests = 0
        self.sent = 0
        self.cut_off = threading.Event()
        self.finished = threading.Event()
        hose = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                hose.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", str(LARGE_BODY_BYTES))
                self.end_headers()
                chunk = bytes(64 * 1024)
                try:
                    while hose.sent < LARGE_BODY_BYTES:
                        self.wfile.write(chunk)
                        hose.sent += len(chunk)
                except OSError:  # broken pipe / reset: the client hung up
                    hose.cut_off.set()
                finally:
                    hose.finished.set()

            def log_message(self, *_: Any) -> None:
                pass

        super().__init__(Handler)


def offline_resolver(host: str, port: int) -> list[IPAddress]:
    """A resolver that asks no name server: an address literal is itself and ``localhost`` is the
    loopback address; any other name does not resolve. For tests whose webhook hosts are generated
    (the API fuzzing), so that no generated name becomes a DNS query."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    if host.lower() == "localhost":
        return [ipaddress.ip_address("127.0.0.1")]
    raise socket.gaierror(socket.EAI_NONAME, f"{host} is not resolved in tests")

"""HTTP server limits: the options every uvicorn server of this service runs with.

Header size is bounded twice: h11 never buffers more than ``max_header_bytes`` of an incomplete
request head (``h11_max_incomplete_event_size``), and ``HeaderLimit`` refuses a complete head over
that size, or with too many headers, with 431 before any other code runs. ``BodyLimit`` is the one
place a request body's size is enforced, for every route (413); the readings of one request are
bounded like those of any message, by ``devices.message`` (``Rules.max_readings``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest.settings import Settings


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config`` that bound what one client can make us hold."""
    return {
        "http": "h11",
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "server_header": False,
        "date_header": True,
        "access_log": False,  # request lines carry patient ids in their paths; the audit log has them
        "timeout_keep_alive": 5,
        "timeout_graceful_shutdown": 10,
    }


MAX_HEADER_COUNT = 100


class HeaderLimit:
    """Refuse (431) a request whose head is over ``max_bytes`` or has over ``max_count`` headers.

    h11 bounds what it buffers of an incomplete head, but a head that arrives whole in one read is
    parsed whatever its size; this check makes the limit exact.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_count: int = MAX_HEADER_COUNT) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_count = max_count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = scope.get("headers", [])
            size = len(scope.get("raw_path") or b"") + len(scope.get("query_string", b""))
            size += sum(len(name) + len(value) + 4 for name, value in headers)
            if size > self.max_bytes or len(headers) > self.max_count:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 431,
                        "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
                    }
                )
                await send(
                    {
                        "type": "http.response.body",
                        "body": b'{"detail":"request headers too large or too many"}',
                    }
                )
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, whatever the route; ``wider`` gives
    some paths a larger limit (``POST /v1/readings``: a message holding an ECG strip), which the
    route itself narrows again for bodies that do not need it."""

    def __init__(self, app: ASGIApp, limit: int, wider: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.default = limit
        self.wider = dict(wider or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.wider.get(scope.get("path", ""), self.default)
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _too_large(send, limit)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await _too_large(send, limit)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Send, limit: int) -> None:
    body = f'{{"detail":"request body over {limit} bytes"}}'.encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})

"""Request rate limit per API token (token bucket), answering 429 with ``Retry-After``.

The key is a digest of the bearer token, or the client address for requests without one, so a
caller cannot dodge its limit by changing anything but its credentials. Buckets live in process
memory: with several service processes each enforces the limit on its own share of the traffic.
The table of buckets is bounded (least recently used keys are dropped) so random tokens cannot
exhaust memory.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from ingest.security.audit import EXEMPT_PATHS

Clock = Callable[[], float]
MAX_KEYS: Final = 100_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets: ``burst`` requests at once, refilled at ``per_minute`` per minute."""

    def __init__(
        self,
        per_minute: int,
        burst: int,
        *,
        clock: Clock = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        if per_minute <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[bytes, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def acquire(self, key: bytes) -> float:
        """Take one request from ``key``'s bucket: 0.0 when allowed, else seconds until allowed."""
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = _Bucket(self.burst, now)
                self._buckets[key] = bucket
                if len(self._buckets) > self.max_keys:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
                elapsed = max(0.0, now - bucket.updated)
                bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
                bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate

    def __len__(self) -> int:
        return len(self._buckets)


def caller_key(scope: Scope) -> bytes:
    """A digest of the bearer token, else of the client address (never the token itself)."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, credentials = value.partition(b" ")
            if scheme.lower() == b"bearer" and credentials.strip():
                return b"t" + hashlib.sha256(credentials.strip()).digest()[:16]
    client = scope.get("client")
    host = client[0] if client else "unknown"
    return b"a" + hashlib.sha256(str(host).encode()).digest()[:16]


class RateLimitMiddleware:
    """Refuse over-limit callers with 429 before any work (database included) is done."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter, on_limited: Callable[[], None] | None = None):
        self.app = app
        self.limiter = limiter
        self.on_limited = on_limited

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        wait = self.limiter.acquire(caller_key(scope))
        if wait <= 0.0:
            await self.app(scope, receive, send)
            return
        if self.on_limited is not None:
            self.on_limited()
        retry_after = str(max(1, math.ceil(wait))).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [(b"content-type", b"application/json"), (b"retry-after", retry_after)],
            }
        )
        await send(
            {
                "type": "http.response.body",
                "body": b'{"detail":"too many requests for this token, retry after ' + retry_after + b' s"}',
            }
        )

"""Security of the clinic service: audit trail, abuse limits, security headers, CORS, retention,
and broker credentials for devices.

``install_security`` wraps an application in the security middleware, outermost first:
CORS (only with configured origins) -> security headers -> header limit -> rate limit -> audit
-> the app.
"""

from __future__ import annotations

from typing import Any, Final

import psycopg
from fastapi import FastAPI
from prometheus_client import Counter

from ingest.security.audit import AuditMiddleware
from ingest.security.audit_store import AuditEvent, insert_event
from ingest.security.headers import SecurityHeaders, add_cors
from ingest.security.limits import HeaderLimit
from ingest.security.ratelimit import RateLimiter, RateLimitMiddleware
from ingest.services import Services

__all__ = ["AuditLog", "audit_log", "install_security"]


AUDIT_LOG_KEY: Final = "audit_log"


class AuditLog:
    """Writes audit rows: on their own (the middleware) or in a caller's transaction."""

    def __init__(self, services: Services, counter: Counter) -> None:
        self._services = services
        self._counter = counter

    def write(self, event: AuditEvent) -> None:
        with self._services.pipelined_transaction() as conn:
            insert_event(conn, event)
        self.counted(event)

    def write_in(self, conn: psycopg.Connection[Any], event: AuditEvent) -> None:
        """Insert in the caller's transaction; call :meth:`counted` once it has committed."""
        insert_event(conn, event)

    def counted(self, event: AuditEvent) -> None:
        self._counter.labels(event.action).inc()


def audit_log(services: Services) -> AuditLog | None:
    log = services.extras.get(AUDIT_LOG_KEY)
    return log if isinstance(log, AuditLog) else None


def install_security(app: FastAPI, services: Services) -> None:
    """Add the security middleware; call after every other ``add_middleware``."""
    settings = services.settings
    registry = services.metrics.registry
    audited = Counter("rpm_audit_events", "Accesses written to the audit log", ["action"], registry=registry)
    limited = Counter(
        "rpm_http_rate_limited", "Requests refused by the per-token rate limit", registry=registry
    )

    log = AuditLog(services, audited)
    services.extras[AUDIT_LOG_KEY] = log
    app.add_middleware(AuditMiddleware, writer=log.write)
    if settings.rate_limit_per_minute > 0:
        limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
        services.extras["rate_limiter"] = limiter
        app.add_middleware(RateLimitMiddleware, limiter=limiter, on_limited=limited.inc)
    app.add_middleware(HeaderLimit, max_bytes=settings.max_header_bytes)
    app.add_middleware(SecurityHeaders, hsts_max_age_s=settings.hsts_max_age_s)
    add_cors(app, settings.cors_origins)

"""The audit trail of every access to patient data, recorded for every route without per-route code.

An ASGI middleware sees each request after routing has picked the route (``scope["route"]``) and
the auth dependency has put the caller at ``request.state.principal``. Just before the response
starts, it writes one ``audit_log`` row: who (token, role, clinic), what (method, route template,
path and its ids, query parameter names), from where (client address, user agent), and the status.
It never sees a body, so no reading value or token can reach the log.

The policy is *audited unless exempt*: every route is audited except the operations endpoints
(health, metrics, API documentation) and static files, so a route added later is covered without
anyone remembering to. Requests under ``/v1`` are audited even when refused (401/403/404), which
records probing; other routes only when a caller is known.

The row is committed before the first byte of the response leaves: when the audit log cannot be
written, the caller gets 503 and no data (fail closed). A route that writes data may instead
write the row in the same transaction as the data (:func:`route_event`, :func:`mark_written`):
then the data and its audit row commit together or not at all, in one commit (HTTP ingest does
this).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode
from uuid import UUID, uuid4

import psycopg
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from psycopg_pool import PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest.security.audit_store import Action, AuditEvent
from ingest.store.tokens import Principal

logger = logging.getLogger(__name__)

#: Routes that never touch patient data and are never audited.
EXEMPT_PATHS: Final = frozenset(
    {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/redoc"}
)
#: Query parameters whose values may identify a patient or carry a secret: only the name is kept.
REDACTED_QUERY: Final = frozenset(
    {"q", "mrn", "name", "display_name", "search", "token", "access_token", "key", "secret"}
)
_READ_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
PRINCIPAL_STATE_KEY: Final = "principal"
PATIENT_STATE_KEY: Final = "audit_patient_id"
REQUEST_ID_STATE_KEY: Final = "request_id"
# Set by a route that committed the request's audit row in its own transaction (with the data it
# wrote): the status that row records. The middleware writes no second row for that status.
WRITTEN_STATE_KEY: Final = "audit_written_status"

AuditWriter = Callable[[AuditEvent], None]


def route_template(route: BaseRoute) -> str | None:
    """The path template a route matches, e.g. ``/v1/patients/{patient_id}``."""
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) else None


def is_audited_route(route: BaseRoute) -> bool:
    """True when requests matched to ``route`` are written to the audit log."""
    if isinstance(route, Mount):
        return False
    template = route_template(route)
    return template is not None and template not in EXEMPT_PATHS


@dataclass(frozen=True, slots=True)
class RouteInfo:
    template: str
    methods: frozenset[str]
    route: BaseRoute


def app_routes(app: FastAPI) -> list[RouteInfo]:
    """Every route of ``app`` with its full template, routers included at any depth."""
    found: list[RouteInfo] = []
    for context in iter_route_contexts(app.routes):
        template = context.path_format or context.path
        if template is None:
            continue
        found.append(RouteInfo(template, frozenset(context.methods or ()), context.original_route))
    return found


def note_patient(state: Any, patient_id: UUID) -> None:
    """Let a handler name the patient whose data it served when the path does not say.

    ``state`` is ``request.state``. Optional: routes with a ``patient_id`` path parameter are
    attributed automatically.
    """
    setattr(state, PATIENT_STATE_KEY, patient_id)


def action_of(method: str) -> Action:
    return "read" if method.upper() in _READ_METHODS else "write"


def redacted_query(raw: bytes) -> str | None:
    """The query string with the values of identifying parameters replaced by ``redacted``."""
    if not raw:
        return None
    try:
        pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    except ValueError:
        return "unparseable"
    kept = [(k[:64], "redacted" if k.lower() in REDACTED_QUERY else v[:100]) for k, v in pairs[:50]]
    return urlencode(kept)[:1000]


def _uuid(value: object) -> UUID | None:
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        try:
            return UUID(value)
        except ValueError:
            return None
    return None


def build_event(scope: Scope, status: int, request_id: UUID) -> AuditEvent | None:
    """The audit row for a finished request, or None when the request is not audited."""
    route = scope.get("route")
    if route is None or not is_audited_route(route):
        return None
    template = route_template(route)
    if template is None:
        return None
    state: dict[str, Any] = scope.get("state") or {}
    principal = state.get(PRINCIPAL_STATE_KEY)
    if not isinstance(principal, Principal):
        principal = None
    if principal is None and not template.startswith("/v1/") and template != "/v1":
        return None
    params: dict[str, Any] = scope.get("path_params") or {}
    resource = {str(k)[:64]: str(v)[:200] for k, v in params.items()}
    patient = _uuid(state.get(PATIENT_STATE_KEY)) or _uuid(params.get("patient_id"))
    headers = dict(scope.get("headers") or [])
    agent = headers.get(b"user-agent")
    client = scope.get("client")
    method: str = scope.get("method", "GET")
    return AuditEvent(
        request_id=request_id,
        method=method,
        route=template,
        path=scope.get("path", "")[:1000],
        action=action_of(method),
        status=status,
        token_id=principal.token_id if principal else None,
        actor_name=principal.name if principal else None,
        actor_role=principal.role if principal else None,
        actor_clinic=principal.clinic_id if principal else None,
        client_addr=str(client[0]) if client else None,
        user_agent=agent.decode("latin-1")[:200] if agent else None,
        query=redacted_query(scope.get("query_string", b"")),
        patient_id=patient,
        resource=resource,
    )


def route_event(scope: Scope, status: int) -> AuditEvent | None:
    """The audit row of the request in ``scope`` answered with ``status``, for a route to write
    in its own transaction (None when the request is not audited or not under the middleware).
    After that transaction commits, the route calls :func:`mark_written`."""
    request_id = (scope.get("state") or {}).get(REQUEST_ID_STATE_KEY)
    return build_event(scope, status, request_id) if isinstance(request_id, UUID) else None


def mark_written(scope: Scope, status: int) -> None:
    scope.setdefault("state", {})[WRITTEN_STATE_KEY] = status


class AuditMiddleware:
    """Write the audit row before the response starts; answer 503 when it cannot be written."""

    def __init__(self, app: ASGIApp, writer: AuditWriter) -> None:
        self.app = app
        self.writer = writer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid4()
        scope.setdefault("state", {})[REQUEST_ID_STATE_KEY] = request_id
        started = False
        refused = False

        async def audited_send(message: Message) -> None:
            nonlocal started, refused
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
                if not await self._record(scope, message["status"], request_id):
                    refused = True
                    await _unavailable(send, request_id)
                    return
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"x-request-id", str(request_id).encode())],
                }
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        except Exception:
            if not started:
                await self._record(scope, 500, request_id)
            raise

    async def _record(self, scope: Scope, status: int, request_id: UUID) -> bool:
        if (scope.get("state") or {}).get(WRITTEN_STATE_KEY) == status:
            return True  # committed by the route, with its data
        event = build_event(scope, status, request_id)
        if event is None:
            return True
        try:
            await run_in_threadpool(self.writer, event)
        except (psycopg.Error, PoolTimeout) as exc:
            logger.error(
                "audit log write failed (%s); refusing %s %s", type(exc).__name__, event.method, event.route
            )
            return False
        return True


async def _unavailable(send: Send, request_id: UUID) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"retry-after", b"5"),
                (b"x-request-id", str(request_id).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b'{"detail":"audit log unavailable, retry later"}'})

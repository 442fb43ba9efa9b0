"""Alerts: list with filters, one alert with its history, acknowledge, resolve, and the live stream.

Only staff tokens (admin, clinician) reach these; a clinician sees its own clinic's alerts only
(another clinic's alert answers 404, as if it did not exist).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from sse_starlette import EventSourceResponse, ServerSentEvent

from ingest.alerts import events, lifecycle
from ingest.alerts.context import AlertsContext, AlertsDep
from ingest.alerts.lifecycle import Actor, AlertFilter
from ingest.alerts.public import alert_public
from ingest.alerts.schemas import AlertDetail, AlertPublic, AlertsPage, HistoryEntry, NoteIn
from ingest.api.deps import ServicesDep, StaffDep
from ingest.services import Services
from ingest.store.tokens import Principal

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/alerts", tags=["alerts"])

RETRY_MS: Final = 3000
BACKLOG_PAGE: Final = 500
STATUSES: Final = ("open", "acknowledged", "resolved")
SEVERITIES: Final = ("warning", "critical")

ListParam = Annotated[list[str] | None, Query(max_length=20, description="repeat or comma-separate values")]


def _split(values: list[str] | None, allowed: tuple[str, ...] | None, name: str) -> list[str]:
    out = [v.strip() for raw in values or [] for v in raw.split(",") if v.strip()]
    if len(out) > 20:
        raise HTTPException(422, f"too many {name} values")
    if allowed is not None:
        bad = sorted({v for v in out if v not in allowed})
        if bad:
            raise HTTPException(
                422, f"unknown {name}: {', '.join(b[:40] for b in bad[:5])}; use {', '.join(allowed)}"
            )
    return out


def _scope(principal: Principal) -> str | None:
    return None if principal.is_admin else (principal.clinic_id or "")


def _actor(principal: Principal) -> Actor:
    return Actor(name=principal.name, token_id=principal.token_id, clinic_id=_scope(principal))


def _encode_cursor(row: dict[str, Any]) -> str:
    raw = f"{row['opened_at'].isoformat()}|{row['id']}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(text: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        at, ident = raw.split("|")
        parsed = datetime.fromisoformat(at)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return parsed, UUID(ident)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise HTTPException(422, "invalid cursor") from None


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise HTTPException(422, f"{name} needs a time zone offset (e.g. Z)")
    return value


@router.get("", response_model=AlertsPage, summary="Alerts, newest first, with filters")
def list_alerts(
    services: ServicesDep,
    principal: StaffDep,
    ctx: AlertsDep,
    status: ListParam = None,
    patient_id: UUID | None = None,
    severity: ListParam = None,
    kind: ListParam = None,
    metric: ListParam = None,
    since: Annotated[datetime | None, Query(description="opened at or after (RFC 3339)")] = None,
    until: Annotated[datetime | None, Query(description="opened before (RFC 3339)")] = None,
    order: Literal["newest", "oldest"] = "newest",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    f = AlertFilter(
        clinic_id=_scope(principal),
        statuses=_split(status, STATUSES, "status"),
        patient_id=patient_id,
        severities=_split(severity, SEVERITIES, "severity"),
        kinds=_split(kind, ctx.engine.kinds.names, "kind"),
        metrics=_split(metric, None, "metric"),
        since=_aware(since, "since"),
        until=_aware(until, "until"),
        order=order,
    )
    position = _decode_cursor(cursor) if cursor else None
    with services.transaction() as conn:
        rows = lifecycle.list_alerts(conn, f, limit=limit + 1, cursor=position)
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "alerts": [alert_public(r) for r in rows],
        "next_cursor": _encode_cursor(rows[-1]) if more and rows else None,
    }


@router.get(
    "/stream",
    summary="Live alert changes as Server-Sent Events",
    description=(
        "`text/event-stream`; every event is `event: alert` with `id` (resume with the standard"
        " `Last-Event-ID` header or the `last_event_id` parameter) and `data` holding"
        " `{event_id, type, at, actor, note, alert}`. A comment heartbeat keeps proxies from"
        " closing an idle stream. Without a last event id the stream starts with what happens next."
    ),
    response_class=EventSourceResponse,
)
async def stream(
    request: Request,
    services: ServicesDep,
    principal: StaffDep,
    ctx: AlertsDep,
    patient_id: UUID | None = None,
    severity: ListParam = None,
    kind: ListParam = None,
    last_event_id: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    last_event_id_header: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=40, include_in_schema=False)
    ] = None,
) -> EventSourceResponse:
    start = last_event_id
    if last_event_id_header is not None and last_event_id_header.strip():
        text = last_event_id_header.strip()
        if not text.isdigit() or len(text) > 18:
            raise HTTPException(422, "Last-Event-ID must be a non-negative integer")
        start = int(text)
    severities = set(_split(severity, SEVERITIES, "severity"))
    kinds = set(_split(kind, ctx.engine.kinds.names, "kind"))
    clinic = _scope(principal)

    def wanted(event: dict[str, Any]) -> bool:
        alert = event["alert"]
        return (
            (clinic is None or event["clinic_id"] == clinic)
            and (patient_id is None or event["patient_id"] == patient_id)
            and (not severities or alert.get("severity") in severities)
            and (not kinds or alert.get("kind") in kinds)
        )

    return EventSourceResponse(
        _events(services, ctx.broadcaster, start, clinic, wanted),
        ping=ctx.heartbeat_s,
        headers={"Cache-Control": "no-cache, no-store", "X-Accel-Buffering": "no"},
    )


async def _events(
    services: Services,
    broadcaster: Any,
    start: int | None,
    clinic: str | None,
    wanted: Any,
) -> AsyncIterator[ServerSentEvent]:
    gauge = services.metrics.alert_stream_clients
    gauge.inc()
    sub = broadcaster.subscribe(asyncio.get_running_loop())
    try:
        last = start if start is not None else await run_in_threadpool(_last_id, services)
        yield ServerSentEvent(comment="alert stream", retry=RETRY_MS)
        while True:  # what the client missed, from the table
            rows = await run_in_threadpool(_backlog, services, last, clinic)
            for row in rows:
                last = row["id"]
                if wanted(row):
                    yield _sse(row)
            if len(rows) < BACKLOG_PAGE:
                break
        while True:  # then live
            batch = await sub.get()
            if batch is None:
                return
            for row in batch:
                if row["id"] <= last:
                    continue
                last = row["id"]
                if wanted(row):
                    yield _sse(row)
    finally:
        broadcaster.unsubscribe(sub)
        gauge.dec()


def _last_id(services: Services) -> int:
    with services.transaction() as conn:
        return events.last_event_id(conn)


def _backlog(services: Services, after: int, clinic: str | None) -> list[dict[str, Any]]:
    with services.transaction() as conn:
        return events.events_after(conn, after, limit=BACKLOG_PAGE, clinic_id=clinic)


def _sse(row: dict[str, Any]) -> ServerSentEvent:
    data = {
        "event_id": row["id"],
        "type": row["type"],
        "at": row["at"].isoformat().replace("+00:00", "Z"),
        "actor": row["actor"],
        "note": row["note"],
        "alert": row["alert"],
    }
    return ServerSentEvent(data=json.dumps(data, separators=(",", ":")), event="alert", id=str(row["id"]))


@router.get("/{alert_id}", response_model=AlertDetail, summary="One alert with its full history")
def get_alert(alert_id: UUID, services: ServicesDep, principal: StaffDep) -> dict[str, Any]:
    with services.transaction() as conn:
        row = lifecycle.get_alert(conn, alert_id)
        scope = _scope(principal)
        if scope is not None and row["clinic_id"] != scope:
            raise HTTPException(404, f"alert {alert_id} not found")
        events = lifecycle.history(conn, alert_id)
    return {**alert_public(row), "history": [HistoryEntry(**e) for e in events]}


@router.post("/{alert_id}/acknowledge", response_model=AlertPublic)
def acknowledge(
    alert_id: UUID,
    services: ServicesDep,
    principal: StaffDep,
    ctx: AlertsDep,
    body: Annotated[NoteIn | None, Body()] = None,
) -> dict[str, Any]:
    return _step(lifecycle.acknowledge, alert_id, services, ctx, principal, body)


@router.post("/{alert_id}/resolve", response_model=AlertPublic)
def resolve(
    alert_id: UUID,
    services: ServicesDep,
    principal: StaffDep,
    ctx: AlertsDep,
    body: Annotated[NoteIn | None, Body()] = None,
) -> dict[str, Any]:
    return _step(lifecycle.resolve, alert_id, services, ctx, principal, body)


def _step(
    step: Callable[..., dict[str, Any]],
    alert_id: UUID,
    services: Services,
    ctx: AlertsContext,
    principal: Principal,
    body: NoteIn | None,
) -> dict[str, Any]:
    """One human lifecycle step (acknowledge or resolve) in its own transaction."""
    with services.transaction() as conn:
        note = body.note if body else None
        row = step(conn, alert_id, _actor(principal), note, origin=ctx.origin, sinks=ctx.sinks)
    return alert_public(row)

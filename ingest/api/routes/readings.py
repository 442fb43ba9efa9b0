"""HTTP ingest: the same pipeline as MQTT, answering 2xx only after the transaction committed."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import psycopg
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from starlette.types import Scope

from devices.errors import MalformedPayload
from devices.message import decode_json
from devices.models import DEVICE_ID_RE
from ingest.api.deps import PrincipalDep, ServicesDep
from ingest.api.schemas import IngestResult, RejectionOut
from ingest.pipeline import Envelope, Outcome
from ingest.security import audit_log
from ingest.security.audit import mark_written, route_event
from ingest.security.audit_store import AuditEvent
from ingest.store.deadletters import DeadLetter, insert_dead_letters
from ingest.store.tokens import Principal

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/readings", tags=["readings"])


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) anything over ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "",
    response_model=IngestResult,
    summary="Ingest readings of one device",
    description=(
        "Body: `{\"device_id\", \"readings\": [...]}` with reading objects as in the MQTT contract."
        " Each reading is judged on its own; refused ones are listed with a reason and kept in the"
        " dead-letter store. Answers only after the readings are committed."
    ),
)
async def post_readings(
    request: Request, services: ServicesDep, principal: PrincipalDep
) -> IngestResult:
    settings = services.settings
    raw = await read_body(request, settings.max_body_bytes)
    received_at = datetime.now(UTC)
    try:
        body = decode_json(raw, max_bytes=settings.max_body_bytes)
    except MalformedPayload as exc:
        await run_in_threadpool(_dead_letter, services, raw, str(exc), received_at)
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    if not isinstance(body, dict):
        raise HTTPException(422, "body must be a JSON object with device_id and readings")
    device_id = body.get("device_id")
    if not isinstance(device_id, str) or not DEVICE_ID_RE.fullmatch(device_id):
        raise HTTPException(422, "device_id is missing or not 1-64 characters of A-Z a-z 0-9 . _ : -")
    readings = body.get("readings")
    if not isinstance(readings, list) or not readings:
        raise HTTPException(422, "readings must be a non-empty array")
    if len(readings) > settings.max_readings_per_message:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"{len(readings)} readings in one request; at most {settings.max_readings_per_message}",
        )
    envelope = Envelope(
        source="http", raw=raw, received_at=received_at, device_id=device_id, decoded=body
    )
    outcome = await run_in_threadpool(_authorize_and_ingest, services, principal, envelope, request.scope)
    if outcome.error is not None:
        raise HTTPException(422, outcome.error)
    return IngestResult(
        accepted=outcome.accepted,
        duplicates=outcome.duplicates,
        rejected=[RejectionOut(index=r.index, reason=r.reason) for r in outcome.rejected],
    )


def _authorize_and_ingest(
    services: ServicesDep, principal: Principal, envelope: Envelope, scope: Scope
) -> Outcome:
    """Authorize, then store the readings and the request's audit row in one transaction (one
    trip to the worker threads, one commit)."""
    assert envelope.device_id is not None
    _authorize_device(services, principal, envelope.device_id)
    audit = audit_log(services)
    written: list[AuditEvent] = []

    def record(conn: psycopg.Connection[Any], outcomes: list[Outcome]) -> None:
        event = route_event(scope, 422 if outcomes[0].error is not None else 200)  # as answered
        if audit is not None and event is not None:
            audit.write_in(conn, event)
            written.append(event)

    [outcome] = services.ingest("http", [envelope], before_commit=record)
    for event in written:  # committed with the readings
        assert audit is not None
        audit.counted(event)
        mark_written(scope, event.status)
    return outcome


def _authorize_device(services: ServicesDep, principal: Principal, device_id: str) -> None:
    if principal.role == "device":
        if principal.device_id != device_id:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "a device token may only post its own device's readings"
            )
        return
    if principal.is_admin:
        return
    with services.transaction() as conn:
        row = conn.execute("SELECT clinic_id FROM devices WHERE id = %s", (device_id,)).fetchone()
    if row is not None and not principal.can_see_clinic(row[0]):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"no access to device {device_id!r}")


def _dead_letter(services: ServicesDep, raw: bytes, reason: str, at: datetime) -> None:
    with services.transaction() as conn:
        insert_dead_letters(conn, [DeadLetter("http", reason, raw)], received_at=at)
    services.metrics.messages_dead_lettered.labels("http").inc()


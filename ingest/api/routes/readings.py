"""HTTP ingest: the one ingest function behind a thin route, answering 2xx only after commit."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Final

import psycopg
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from starlette.types import Scope

from devices.errors import MalformedPayload, TooManyReadings
from devices.message import check_message, decode_json, holds_ecg
from ingest.api.deps import PrincipalDep, ServicesDep
from ingest.api.schemas import IngestResult, RejectionOut
from ingest.pipeline import Envelope, Outcome
from ingest.security import audit_log
from ingest.security.audit import mark_written, route_event
from ingest.security.audit_store import AuditEvent
from ingest.services import Services
from ingest.store.deadletters import DeadLetter
from ingest.store.roster import device_clinic
from ingest.store.tokens import Principal

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/readings", tags=["readings"])

SOURCE = "http"
DECODE_INLINE_BYTES: Final = 256 * 1024


@router.post(
    "",
    response_model=IngestResult,
    summary="Ingest readings of one device",
    description=(
        'Body: `{"device_id", "readings": [...]}` with reading objects as in the MQTT contract.'
        " Each reading is judged on its own; refused ones are listed with a reason and kept in the"
        " dead-letter store. Answers only after the readings are committed."
    ),
)
async def post_readings(request: Request, services: ServicesDep, principal: PrincipalDep) -> IngestResult:
    raw = await request.body()  # BodyLimit (ingest.security.limits) refuses an oversized body
    received_at = datetime.now(UTC)
    try:
        if len(raw) <= DECODE_INLINE_BYTES:
            body = decode_json(raw, max_bytes=None)
        else:  # a large body (an ECG strip) is decoded off the event loop: it takes tens of ms
            body = await run_in_threadpool(decode_json, raw, max_bytes=None)
    except MalformedPayload as exc:
        # a device token vouches for its device: its refused bodies are limited per device
        device = principal.device_id if principal.role == "device" else None
        letter = DeadLetter.build(SOURCE, str(exc), raw, device_id=device)
        await run_in_threadpool(services.ingest, SOURCE, [], refused=[letter])
        if len(raw) > services.limits.body_bytes:  # over the limit and no ECG message either
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, _too_large(services)) from None
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    if len(raw) > services.limits.body_bytes and not holds_ecg(body):
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, _too_large(services))
    try:
        device_id = check_message(body, device_id=None, rules=services.limits.message, require_readings=True)
    except TooManyReadings as exc:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, str(exc)) from None
    except MalformedPayload as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    envelope = Envelope(source=SOURCE, raw=raw, received_at=received_at, device_id=device_id, decoded=body)
    outcome = await run_in_threadpool(_authorize_and_ingest, services, principal, envelope, request.scope)
    if outcome.error is not None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, outcome.error)
    return IngestResult(
        accepted=outcome.accepted,
        duplicates=outcome.duplicates,
        rejected=[RejectionOut(index=r.index, reason=r.reason) for r in outcome.rejected],
    )


def _authorize_and_ingest(
    services: Services, principal: Principal, envelope: Envelope, scope: Scope
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

    [outcome] = services.ingest(SOURCE, [envelope], before_commit=record)
    for event in written:  # committed with the readings
        assert audit is not None
        audit.counted(event)
        mark_written(scope, event.status)
    return outcome


def _authorize_device(services: Services, principal: Principal, device_id: str) -> None:
    if principal.role == "device":
        if principal.device_id != device_id:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "a device token may only post its own device's readings"
            )
        return
    if principal.is_admin:
        return
    with services.transaction() as conn:
        clinic = device_clinic(conn, device_id)
    if clinic is not None and not principal.can_see_clinic(clinic):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"no access to device {device_id!r}")


def _too_large(services: Services) -> str:
    return (
        f"request body over {services.limits.body_bytes} bytes (only a message holding an ECG"
        f" reading may be up to {services.limits.message.ecg_max_bytes} bytes)"
    )

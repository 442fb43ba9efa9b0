"""The audit log, for administrators: who accessed which patient's data, when and from where."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from ingest.api.deps import AdminDep, ServicesDep
from ingest.security.audit_store import query_events

router = APIRouter(prefix="/v1/audit", tags=["audit"])


class AuditEventPublic(BaseModel):
    id: int
    at: datetime
    request_id: UUID
    token_id: UUID | None
    actor_name: str | None
    actor_role: str | None
    actor_clinic: str | None
    client_addr: str | None
    user_agent: str | None
    method: str
    route: str = Field(description="the route template, e.g. /v1/patients/{patient_id}")
    path: str
    query: str | None = Field(description="query string; identifying values are redacted")
    action: Literal["read", "write"]
    patient_id: UUID | None
    resource: dict[str, Any] = Field(description="the ids in the path")
    status: int


class AuditPage(BaseModel):
    events: list[AuditEventPublic]
    next_before_id: int | None = Field(description="pass as before_id for the next (older) page")


@router.get("", response_model=AuditPage, summary="Query the audit log (admin), newest first")
def list_audit_events(
    services: ServicesDep,
    _: AdminDep,
    since: Annotated[datetime | None, Query(description="RFC 3339, inclusive")] = None,
    until: Annotated[datetime | None, Query(description="RFC 3339, exclusive")] = None,
    patient_id: UUID | None = None,
    token_id: UUID | None = None,
    clinic: Annotated[str | None, Query(max_length=64, description="the caller's clinic")] = None,
    route: Annotated[str | None, Query(max_length=300)] = None,
    action: Literal["read", "write"] | None = None,
    before_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise HTTPException(422, f"{name} needs a time zone offset (e.g. Z)")
    with services.transaction() as conn:
        rows = query_events(
            conn,
            since=since,
            until=until,
            patient_id=patient_id,
            token_id=token_id,
            clinic_id=clinic,
            route=route,
            action=action,
            before_id=before_id,
            limit=limit,
        )
    events = [AuditEventPublic(**r) for r in rows]
    return AuditPage(events=events, next_before_id=events[-1].id if len(events) == limit else None)

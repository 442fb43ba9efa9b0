"""SQL for the append-only audit log (table ``audit_log``, migration 0005)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from ingest.db.rows import fetch_all

Action = Literal["read", "write"]

AUDIT_COLUMNS = (
    "id, at, request_id, token_id, actor_name, actor_role, actor_clinic, client_addr, user_agent,"
    " method, route, path, query, action, patient_id, resource, status"
)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One access: who (token), what (route, resource ids), from where (address), how it ended."""

    request_id: UUID
    method: str
    route: str
    path: str
    action: Action
    status: int
    token_id: UUID | None = None
    actor_name: str | None = None
    actor_role: str | None = None
    actor_clinic: str | None = None
    client_addr: str | None = None
    user_agent: str | None = None
    query: str | None = None
    patient_id: UUID | None = None
    resource: dict[str, str] = field(default_factory=dict)


def _clip(text: str | None, limit: int) -> str | None:
    return None if text is None else text[:limit]


def insert_event(conn: psycopg.Connection[Any], event: AuditEvent) -> None:
    conn.execute(
        "INSERT INTO audit_log (request_id, token_id, actor_name, actor_role, actor_clinic,"
        " client_addr, user_agent, method, route, path, query, action, patient_id, resource, status)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            event.request_id,
            event.token_id,
            _clip(event.actor_name, 200),
            event.actor_role,
            event.actor_clinic,
            _clip(event.client_addr, 100),
            _clip(event.user_agent, 200),
            event.method[:16],
            event.route[:300],
            event.path[:1000],
            _clip(event.query, 1000),
            event.action,
            event.patient_id,
            Jsonb(event.resource),
            event.status,
        ),
    )


def query_events(
    conn: psycopg.Connection[Any],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    patient_id: UUID | None = None,
    token_id: UUID | None = None,
    clinic_id: str | None = None,
    route: str | None = None,
    action: Action | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest first; ``before_id`` pages backwards."""
    return fetch_all(
        conn,
        f"SELECT {AUDIT_COLUMNS} FROM audit_log"
        " WHERE (%(since)s::timestamptz IS NULL OR at >= %(since)s)"
        " AND (%(until)s::timestamptz IS NULL OR at < %(until)s)"
        " AND (%(patient)s::uuid IS NULL OR patient_id = %(patient)s)"
        " AND (%(token)s::uuid IS NULL OR token_id = %(token)s)"
        " AND (%(clinic)s::text IS NULL OR actor_clinic = %(clinic)s)"
        " AND (%(route)s::text IS NULL OR route = %(route)s)"
        " AND (%(action)s::text IS NULL OR action = %(action)s)"
        " AND (%(before)s::bigint IS NULL OR id < %(before)s)"
        " ORDER BY id DESC LIMIT %(limit)s",
        {
            "since": since,
            "until": until,
            "patient": patient_id,
            "token": token_id,
            "clinic": clinic_id,
            "route": route,
            "action": action,
            "before": before_id,
            "limit": limit,
        },
    )

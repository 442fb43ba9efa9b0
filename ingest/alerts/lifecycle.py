"""Human steps of an alert's life (acknowledge, resolve) and the queries behind the alerts API.

open -> acknowledged -> resolved; open -> resolved (acknowledging an alert that latched after its
condition cleared resolves it as well). Each step records who, when and a note, and
writes an event (history, live stream, webhooks) in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, LiteralString
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from ingest.alerts.events import EventSink, PendingEvent, write_events
from ingest.alerts.public import ALERT_COLUMNS
from ingest.alerts.store import auto_resolve, lock_key
from ingest.db.rows import fetch_one
from ingest.errors import AlertNotFound, InvalidTransition


@dataclass(frozen=True, slots=True)
class Actor:
    name: str
    token_id: UUID | None
    clinic_id: str | None  # None: may act on every clinic's alerts (admin)


def _locked_unresolved(conn: psycopg.Connection[Any], alert_id: UUID, actor: Actor) -> dict[str, Any]:
    """The alert, locked; first the patient's alert lock, so that a human step and the engine
    deciding on a reading of the same patient never interleave. A resolved alert takes no human
    step: :class:`InvalidTransition` (409)."""
    found = conn.execute("SELECT patient_id FROM alerts WHERE id = %s", (alert_id,)).fetchone()
    if found is not None:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(found[0]),))
    row = fetch_one(conn, f"SELECT {ALERT_COLUMNS} FROM alerts WHERE id = %s FOR UPDATE", (alert_id,))
    if row is None or (actor.clinic_id is not None and row["clinic_id"] != actor.clinic_id):
        raise AlertNotFound(f"alert {alert_id} not found")
    if row["status"] == "resolved":
        raise InvalidTransition(f"alert {alert_id} is already resolved")
    return row


def acknowledge(
    conn: psycopg.Connection[Any],
    alert_id: UUID,
    actor: Actor,
    note: str | None,
    *,
    origin: str,
    sinks: Sequence[EventSink] = (),
) -> dict[str, Any]:
    """Acknowledge an open alert. Acknowledging it again changes nothing; a resolved one is 409.
    A latched alert whose condition has cleared (``cleared_at`` set) is resolved right after: it
    was only waiting for someone to see it."""
    row = _locked_unresolved(conn, alert_id, actor)
    if row["status"] == "acknowledged":
        return row
    updated = _record(
        conn, alert_id, actor, note, origin, sinks, "acknowledged",
        "status = 'acknowledged', acknowledged_at = now(), acknowledged_by = %s,"
        " acknowledged_by_token = %s, acknowledge_note = %s",
    )  # fmt: skip
    if updated["cleared_at"] is None:
        return updated
    reason = "condition had cleared before acknowledgement"
    resolved = auto_resolve(conn, alert_id, cleared_at=updated["cleared_at"], note=reason)
    assert resolved is not None
    event = PendingEvent("resolved", resolved, actor="system", note=reason)
    write_events(conn, [event], origin=origin, sinks=sinks)
    return resolved


def resolve(
    conn: psycopg.Connection[Any],
    alert_id: UUID,
    actor: Actor,
    note: str | None,
    *,
    origin: str,
    sinks: Sequence[EventSink] = (),
) -> dict[str, Any]:
    """Resolve an open or acknowledged alert by hand; a resolved one is 409."""
    _locked_unresolved(conn, alert_id, actor)
    return _record(
        conn, alert_id, actor, note, origin, sinks, "resolved",
        "status = 'resolved', resolved_at = now(), resolved_by = %s, resolved_by_token = %s,"
        " resolve_note = %s, resolution = 'manual'",
    )  # fmt: skip


def _record(
    conn: psycopg.Connection[Any],
    alert_id: UUID,
    actor: Actor,
    note: str | None,
    origin: str,
    sinks: Sequence[EventSink],
    event: Literal["acknowledged", "resolved"],
    assignments: LiteralString,
) -> dict[str, Any]:
    """Apply one human step (``assignments`` take actor name, token id and note) and log its event."""
    updated = fetch_one(
        conn,
        f"UPDATE alerts SET {assignments}, updated_at = now() WHERE id = %s RETURNING {ALERT_COLUMNS}",
        (actor.name, actor.token_id, note, alert_id),
    )
    assert updated is not None
    step = PendingEvent(event, updated, actor=actor.name, note=note)
    write_events(conn, [step], origin=origin, sinks=sinks)
    return updated


def get_alert(conn: psycopg.Connection[Any], alert_id: UUID) -> dict[str, Any]:
    row = fetch_one(conn, f"SELECT {ALERT_COLUMNS} FROM alerts WHERE id = %s", (alert_id,))
    if row is None:
        raise AlertNotFound(f"alert {alert_id} not found")
    return row


def history(conn: psycopg.Connection[Any], alert_id: UUID) -> list[dict[str, Any]]:
    """Every event of one alert, oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT id, type, at, actor, note, alert->>'severity' AS severity,"
            " alert->>'status' AS status FROM alert_events WHERE alert_id = %s ORDER BY id",
            (alert_id,),
        )
        return cur.fetchall()


@dataclass(frozen=True, slots=True)
class AlertFilter:
    clinic_id: str | None = None
    statuses: Sequence[str] = ()
    patient_id: UUID | None = None
    severities: Sequence[str] = ()
    kinds: Sequence[str] = ()
    metrics: Sequence[str] = ()
    since: datetime | None = None
    until: datetime | None = None
    order: Literal["newest", "oldest"] = "newest"


def list_alerts(
    conn: psycopg.Connection[Any],
    f: AlertFilter,
    *,
    limit: int,
    cursor: tuple[datetime, UUID] | None = None,
) -> list[dict[str, Any]]:
    """Alerts matching the filter, newest opened first (or oldest), keyset-paginated."""
    desc = f.order == "newest"
    keyset = ""
    if cursor is not None:
        keyset = (
            " AND (opened_at, id) < (%(c_at)s, %(c_id)s)"
            if desc
            else (" AND (opened_at, id) > (%(c_at)s, %(c_id)s)")
        )
    direction = "DESC" if desc else "ASC"
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {ALERT_COLUMNS} FROM alerts WHERE true"
            " AND (%(clinic)s::text IS NULL OR clinic_id = %(clinic)s)"
            " AND (cardinality(%(statuses)s::text[]) = 0 OR status = ANY(%(statuses)s))"
            " AND (%(patient)s::uuid IS NULL OR patient_id = %(patient)s)"
            " AND (cardinality(%(severities)s::text[]) = 0 OR severity = ANY(%(severities)s))"
            " AND (cardinality(%(kinds)s::text[]) = 0 OR kind = ANY(%(kinds)s))"
            " AND (cardinality(%(metrics)s::text[]) = 0 OR metric = ANY(%(metrics)s))"
            " AND (%(since)s::timestamptz IS NULL OR opened_at >= %(since)s)"
            " AND (%(until)s::timestamptz IS NULL OR opened_at < %(until)s)"
            f"{keyset} ORDER BY opened_at {direction}, id {direction} LIMIT %(limit)s",
            {
                "clinic": f.clinic_id,
                "statuses": list(f.statuses),
                "patient": f.patient_id,
                "severities": list(f.severities),
                "kinds": list(f.kinds),
                "metrics": list(f.metrics),
                "since": f.since,
                "until": f.until,
                "limit": limit,
                "c_at": cursor[0] if cursor else None,
                "c_id": cursor[1] if cursor else None,
            },
        )
        return cur.fetchall()

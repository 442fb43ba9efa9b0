"""The alert event log: history, the live stream's source, and the webhook deliveries' origin.

Every change of an alert writes an event in the same transaction. Event writers take one
transaction-scoped advisory lock first, so event ids become visible in increasing order: a reader
that asks for "ids above the last one I saw" never skips an event that commits late.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ingest.alerts.public import alert_public

logger = logging.getLogger(__name__)

EVENTS_LOCK: Final = 0x52504D5F414C5254  # "RPM_ALRT": serialises alert event ids with commits
NOTIFY_CHANNEL: Final = "rpm_alert_events"


@dataclass(frozen=True, slots=True)
class PendingEvent:
    type: str
    alert: dict[str, Any]  # the row after the change
    actor: str | None = None
    note: str | None = None


EventSink = Callable[[psycopg.Connection[Any], Sequence[PendingEvent]], None]
"""Another feature's work on alert changes, in the transaction that made them (the Flag export's
outbox rows): handed to the engine, the scheduler and the human steps by the alerts component."""


def write_events(
    conn: psycopg.Connection[Any],
    events: Sequence[PendingEvent],
    *,
    origin: str,
    sinks: Sequence[EventSink] = (),
) -> list[int]:
    """Append events (history + stream), queue their webhook deliveries, notify listeners, and
    hand them to ``sinks`` (same transaction)."""
    if not events:
        return []
    for sink in sinks:
        sink(conn, events)
    rows = [e.alert for e in events]
    with conn.pipeline():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (EVENTS_LOCK,))
        cur = conn.execute(
            "WITH e AS ("
            "  INSERT INTO alert_events (alert_id, clinic_id, patient_id, type, actor, note, origin, alert)"
            "  SELECT a, c, p, t, who, note, %s, j FROM unnest(%s::uuid[], %s::text[], %s::uuid[],"
            "    %s::text[], %s::text[], %s::text[], %s::jsonb[]) WITH ORDINALITY"
            "    AS u(a, c, p, t, who, note, j, ord)"
            "  ORDER BY ord RETURNING id, clinic_id, type, alert"
            "), d AS ("
            "  INSERT INTO webhook_deliveries (webhook_id, event_id)"
            "  SELECT w.id, e.id FROM e JOIN alert_webhooks w"
            "    ON w.clinic_id = e.clinic_id AND w.enabled AND e.type = ANY(w.event_types)"
            "    AND (w.min_severity = 'warning' OR e.alert->>'severity' = 'critical')"
            "  ON CONFLICT DO NOTHING"
            ") SELECT id FROM e ORDER BY id",
            (
                origin,
                [r["id"] for r in rows],
                [r["clinic_id"] for r in rows],
                [r["patient_id"] for r in rows],
                [e.type for e in events],
                [e.actor for e in events],
                [e.note for e in events],
                [Jsonb(alert_public(r)) for r in rows],
            ),
        )
        conn.execute("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))
    ids = [r[0] for r in cur.fetchall()]
    logger.debug("wrote %d alert events up to %d", len(ids), ids[-1])
    return ids


def events_after(
    conn: psycopg.Connection[Any],
    after_id: int,
    *,
    limit: int = 500,
    clinic_id: str | None = None,
) -> list[dict[str, Any]]:
    """Events with id above ``after_id`` in id order (optionally one clinic's)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT id, alert_id, clinic_id, patient_id, type, at, actor, note, origin, alert"
            " FROM alert_events WHERE id > %(after)s"
            " AND (%(clinic)s::text IS NULL OR clinic_id = %(clinic)s)"
            " ORDER BY id LIMIT %(limit)s",
            {"after": after_id, "clinic": clinic_id, "limit": limit},
        )
        return cur.fetchall()


def last_event_id(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT coalesce(max(id), 0) FROM alert_events").fetchone()
    return int(row[0]) if row else 0

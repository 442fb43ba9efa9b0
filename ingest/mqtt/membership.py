"""Who is in an MQTT shared group, kept in ``mqtt_group_members`` (migration 0016).

The broker cannot tell a member whether others remain, and Mosquitto drops a shared group's
messages while no member holds a subscription. So a member stopping cleanly asks here first:
:func:`may_leave` lets it leave (hand its share back) while another member was seen recently,
and otherwise parks it (it keeps its session, where readings wait until a member adopts it or
it comes back). :func:`claim_orphan` finds a session to adopt: a parked member's, or that of a
member not seen for ``stale_s`` (killed, and not started again under its client id).

Every decision about a group runs under one transaction-scoped advisory lock per group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import psycopg

_GROUP_LOCK: Final = "SELECT pg_advisory_xact_lock(hashtext('rpm-mqtt-group:' || %s))"


@dataclass(frozen=True, slots=True)
class Orphan:
    """A session some member left behind: its client id and what it had subscribed to."""

    client_id: str
    topic_filter: str


def join(conn: psycopg.Connection[Any], *, client_id: str, group: str, topic_filter: str) -> None:
    """Record ``client_id`` as an active member (again): its session is its own."""
    conn.execute(_GROUP_LOCK, (group,))
    conn.execute(
        "INSERT INTO mqtt_group_members (client_id, shared_group, topic_filter, state, seen_at)"
        " VALUES (%s, %s, %s, 'active', now())"
        " ON CONFLICT (client_id) DO UPDATE SET shared_group = EXCLUDED.shared_group,"
        " topic_filter = EXCLUDED.topic_filter, state = 'active', seen_at = now()",
        (client_id, group, topic_filter),
    )


def heartbeat(conn: psycopg.Connection[Any], client_ids: list[str]) -> None:
    """Members (and sessions being adopted) still alive."""
    conn.execute("UPDATE mqtt_group_members SET seen_at = now() WHERE client_id = ANY(%s)", (client_ids,))


def may_leave(conn: psycopg.Connection[Any], *, client_id: str, group: str, fresh_s: float) -> bool:
    """True (and the member's row is gone) if another member was seen within ``fresh_s``;
    False: the member is the last one and is recorded as parked."""
    conn.execute(_GROUP_LOCK, (group,))
    row = conn.execute(
        "SELECT count(*) FROM mqtt_group_members WHERE shared_group = %s AND client_id <> %s"
        " AND state = 'active' AND seen_at > now() - make_interval(secs => %s)",
        (group, client_id, fresh_s),
    ).fetchone()
    others = int(row[0]) if row is not None else 0
    if others:
        conn.execute("DELETE FROM mqtt_group_members WHERE client_id = %s", (client_id,))
        return True
    conn.execute(
        "UPDATE mqtt_group_members SET state = 'parked', seen_at = now() WHERE client_id = %s",
        (client_id,),
    )
    return False


def claim_orphan(
    conn: psycopg.Connection[Any], *, client_id: str, group: str, stale_s: float
) -> Orphan | None:
    """Take one session to adopt: parked, or not seen for ``stale_s``. Its row is marked active
    and seen now (the adopter keeps it seen while it works), so no other member takes it too."""
    conn.execute(_GROUP_LOCK, (group,))
    row = conn.execute(
        "UPDATE mqtt_group_members SET state = 'active', seen_at = now()"
        " WHERE client_id = (SELECT client_id FROM mqtt_group_members"
        "   WHERE shared_group = %s AND client_id <> %s"
        "   AND (state = 'parked' OR seen_at < now() - make_interval(secs => %s))"
        "   ORDER BY seen_at LIMIT 1)"
        " RETURNING client_id, topic_filter",
        (group, client_id, stale_s),
    ).fetchone()
    return None if row is None else Orphan(str(row[0]), str(row[1]))


def forget(conn: psycopg.Connection[Any], client_id: str) -> None:
    """The session of ``client_id`` is ended: no row for it any more."""
    conn.execute("DELETE FROM mqtt_group_members WHERE client_id = %s", (client_id,))

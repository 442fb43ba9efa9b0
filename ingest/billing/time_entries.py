"""SQL for clinician time entries (treatment management minutes).

An entry is never removed: deleting it records who deleted it and when, and it stops counting
(the API's audit log row records the deletion too).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Final
from uuid import UUID

import psycopg

from ingest.billing.errors import EntryNotFound
from ingest.db.rows import fetch_all, fetch_one

ENTRY_COLUMNS: Final = (
    "id, patient_id, minutes, interactive, performed_at, note, author_token, author_name, created_at"
)


def add_entry(
    conn: psycopg.Connection[Any],
    *,
    patient_id: UUID,
    minutes: int,
    interactive: bool,
    performed_at: datetime,
    note: str | None,
    author_token: UUID,
    author_name: str,
) -> dict[str, Any]:
    row = fetch_one(
        conn,
        "INSERT INTO clinician_time"
        " (patient_id, minutes, interactive, performed_at, note, author_token, author_name)"
        f" VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {ENTRY_COLUMNS}",
        (patient_id, minutes, interactive, performed_at, note, author_token, author_name),
    )
    assert row is not None
    return row


def month_entries(
    conn: psycopg.Connection[Any], patient_id: UUID, first: date, last: date, timezone: str
) -> list[dict[str, Any]]:
    """The patient's entries performed on clinic-local dates ``first`` … ``last``, oldest first."""
    return fetch_all(
        conn,
        f"SELECT {ENTRY_COLUMNS} FROM clinician_time"
        " WHERE patient_id = %(p)s AND deleted_at IS NULL"
        " AND performed_at >= (%(first)s::date::timestamp AT TIME ZONE %(tz)s) - interval '1 day'"
        " AND performed_at < ((%(last)s::date + 1)::timestamp AT TIME ZONE %(tz)s) + interval '1 day'"
        " AND (performed_at AT TIME ZONE %(tz)s)::date BETWEEN %(first)s AND %(last)s"
        " ORDER BY performed_at, created_at",
        {"p": patient_id, "first": first, "last": last, "tz": timezone},
    )


def get_entry(conn: psycopg.Connection[Any], patient_id: UUID, entry_id: UUID) -> dict[str, Any]:
    """The live entry (locked for a change), or :class:`EntryNotFound`."""
    row = fetch_one(
        conn,
        f"SELECT {ENTRY_COLUMNS} FROM clinician_time"
        " WHERE id = %s AND patient_id = %s AND deleted_at IS NULL FOR UPDATE",
        (entry_id, patient_id),
    )
    if row is None:
        raise EntryNotFound(f"time entry {entry_id} not found")
    return row


def delete_entry(conn: psycopg.Connection[Any], entry_id: UUID, deleted_by: UUID) -> None:
    conn.execute(
        "UPDATE clinician_time SET deleted_at = now(), deleted_by = %s WHERE id = %s AND deleted_at IS NULL",
        (deleted_by, entry_id),
    )

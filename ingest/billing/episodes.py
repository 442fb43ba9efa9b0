"""Monitoring episodes: SQL for reading, starting and ending them.

An episode opens with the patient's first device assignment (a trigger on
``device_assignments``, migration 0011, so every path that assigns devices opens one) or with an
explicit start (:func:`start_episode`), and ends when the patient's last device assignment ends
(the same trigger) or when another feature says monitoring ended (:func:`end_monitoring`, e.g. an
HL7 ADT A03 discharge). 30-day billing periods count from the start.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from ingest.billing.errors import EpisodeConflict
from ingest.db.rows import fetch_all, fetch_one

EPISODE_COLUMNS = "id, patient_id, started_at, ended_at, started_by"


def end_monitoring(conn: psycopg.Connection[Any], patient_id: UUID, ended_at: datetime) -> None:
    """End the patient's open monitoring episode at ``ended_at``; idempotent.

    ``ingest.billing.episodes.end_monitoring(conn: psycopg.Connection, patient_id: UUID,
    ended_at: datetime) -> None`` is the call for any feature that learns that monitoring ended
    (an HL7 ADT A03 discharge, an explicit end). It runs in the caller's transaction and commits
    with it. With no open episode it does nothing, so a repeated message is harmless; an
    ``ended_at`` before the episode's start ends it at its start (an empty episode, which bills
    nothing). Readings measured at or after ``ended_at`` belong to no episode until a new one
    starts (the next device assignment or an explicit start). ``ended_at`` must be aware.
    """
    if ended_at.tzinfo is None:
        raise ValueError("ended_at must be timezone-aware")
    conn.execute("SELECT 1 FROM patients WHERE id = %s FOR NO KEY UPDATE", (patient_id,))
    conn.execute("SELECT billing_end_monitoring(%s, %s)", (patient_id, ended_at))


def merge_patients(conn: psycopg.Connection[Any], survivor: UUID, merged: UUID) -> None:
    """The merged patient's episodes and days with readings become the survivor's, in the
    caller's transaction.

    ``ingest.billing.episodes.merge_patients(conn, survivor, merged)`` is the call for a patient
    merge (HL7 ADT A40), made with both patients locked and before their device assignments move.
    Overlapping episodes of the two are joined into one (earliest start, latest end, open if
    either was open), so a reading still belongs to one episode; the device assignments moved
    later in the same transaction then open or end no episode (migration 0018).
    """
    conn.execute("SELECT billing_merge_patients(%s, %s)", (survivor, merged))


def start_episode(conn: psycopg.Connection[Any], patient_id: UUID, started_at: datetime) -> dict[str, Any]:
    """Start an episode explicitly at ``started_at`` (``POST /v1/patients/{id}/episodes``).

    An open episode that started earlier ends at ``started_at`` (a new episode ends the previous
    one); one that started at or after it, or a closed one reaching past it, is a conflict: an
    episode never starts inside another.
    """
    conn.execute("SELECT 1 FROM patients WHERE id = %s FOR NO KEY UPDATE", (patient_id,))
    clash = fetch_one(
        conn,
        "SELECT id, started_at, ended_at FROM monitoring_episodes WHERE patient_id = %(p)s"
        " AND (started_at >= %(at)s OR ended_at > %(at)s) ORDER BY started_at DESC LIMIT 1",
        {"p": patient_id, "at": started_at},
    )
    if clash is not None:
        raise EpisodeConflict(
            f"an episode of this patient already covers {started_at.isoformat()}"
            f" (episode {clash['id']} from {clash['started_at'].isoformat()})"
        )
    conn.execute("SELECT billing_end_monitoring(%s, %s)", (patient_id, started_at))
    row = fetch_one(
        conn,
        "INSERT INTO monitoring_episodes (patient_id, started_at, started_by)"
        f" VALUES (%s, %s, 'explicit') RETURNING {EPISODE_COLUMNS}",
        (patient_id, started_at),
    )
    assert row is not None
    return row


def list_episodes(conn: psycopg.Connection[Any], patient_id: UUID) -> list[dict[str, Any]]:
    """The patient's episodes, oldest first."""
    return fetch_all(
        conn,
        f"SELECT {EPISODE_COLUMNS} FROM monitoring_episodes WHERE patient_id = %s ORDER BY started_at",
        (patient_id,),
    )

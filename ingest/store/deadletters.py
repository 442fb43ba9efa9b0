"""SQL for the dead-letter store: poison input kept raw with its reason, listable and replayable."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row


@dataclass(frozen=True, slots=True)
class DeadLetter:
    source: str
    reason: str
    raw: bytes
    topic: str | None = None
    device_id: str | None = None
    reading_index: int | None = None


def insert_dead_letters(
    conn: psycopg.Connection[Any], letters: Sequence[DeadLetter], *, received_at: datetime
) -> None:
    if not letters:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO dead_letters (received_at, source, topic, device_id, reading_index,"
            " reason, raw) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [
                (received_at, d.source, d.topic, d.device_id, d.reading_index, d.reason, d.raw)
                for d in letters
            ],
        )


_PUBLIC_COLUMNS = (
    "id, received_at, source, topic, device_id, reading_index, reason, raw,"
    " replayed_at, replay_result"
)


def list_dead_letters(
    conn: psycopg.Connection[Any],
    *,
    limit: int,
    before_id: int | None = None,
    device_id: str | None = None,
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {_PUBLIC_COLUMNS} FROM dead_letters"
            " WHERE (%(before)s::bigint IS NULL OR id < %(before)s)"
            " AND (%(device)s::text IS NULL OR device_id = %(device)s)"
            " ORDER BY id DESC LIMIT %(limit)s",
            {"before": before_id, "device": device_id, "limit": limit},
        )
        return cur.fetchall()


def get_dead_letter_for_update(conn: psycopg.Connection[Any], letter_id: int) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT {_PUBLIC_COLUMNS} FROM dead_letters WHERE id = %s FOR UPDATE", (letter_id,))
        return cur.fetchone()


def mark_replayed(
    conn: psycopg.Connection[Any], letter_id: int, *, at: datetime, result: str
) -> None:
    conn.execute(
        "UPDATE dead_letters SET replayed_at = %s, replay_result = %s WHERE id = %s",
        (at, result, letter_id),
    )


def count_dead_letters(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
    return int(row[0]) if row else 0

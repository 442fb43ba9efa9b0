"""SQL for the dead-letter store: poison input kept raw with its reason, listable and replayable."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import psycopg
from psycopg.rows import dict_row

MAX_RAW_BYTES: Final = 1024 * 1024  # raw bytes kept of one refused message or reading
MAX_REASON_CHARS: Final = 2000  # of a reason, and of a replay's recorded result


@dataclass(frozen=True, slots=True)
class DeadLetter:
    source: str
    reason: str
    raw: bytes
    topic: str | None = None
    device_id: str | None = None
    reading_index: int | None = None

    @classmethod
    def build(
        cls,
        source: str,
        reason: str,
        raw: bytes,
        *,
        topic: str | None = None,
        device_id: str | None = None,
        reading_index: int | None = None,
    ) -> DeadLetter:
        """The dead letter of refused input, whatever its source: the raw bytes are kept up to
        :data:`MAX_RAW_BYTES` (the reason then says they were cut), the reason up to
        :data:`MAX_REASON_CHARS` characters."""
        if len(raw) > MAX_RAW_BYTES:
            raw = raw[:MAX_RAW_BYTES]
            reason = f"{reason} (raw bytes truncated to {MAX_RAW_BYTES})"
        return cls(
            source=source,
            reason=reason[:MAX_REASON_CHARS],
            raw=raw,
            topic=topic,
            device_id=device_id,
            reading_index=reading_index,
        )


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


def get_dead_letter(conn: psycopg.Connection[Any], letter_id: int) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT {_PUBLIC_COLUMNS} FROM dead_letters WHERE id = %s", (letter_id,))
        return cur.fetchone()


def mark_replayed(
    conn: psycopg.Connection[Any], letter_id: int, *, at: datetime, result: str
) -> None:
    """Record a replay's result (cut to :data:`MAX_REASON_CHARS`) on its dead letter."""
    conn.execute(
        "UPDATE dead_letters SET replayed_at = %s, replay_result = %s WHERE id = %s",
        (at, result[:MAX_REASON_CHARS], letter_id),
    )


def count_dead_letters(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
    return int(row[0]) if row else 0

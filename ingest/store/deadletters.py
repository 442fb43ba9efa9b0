"""SQL for the dead-letter store: poison input kept raw with its reason, listable and replayable.

Bounded (see :class:`DeadLetterLimit`): per source and key (:func:`limit_key`) and per window,
the first letters are kept in full and the rest counted, exactly, into one summary row per key
and window, updated in place; nothing refused goes uncounted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import psycopg

from ingest.db.rows import fetch_all, fetch_one

# Raw bytes kept of one refused message or reading: a whole ECG message (4 MiB) and its topic.
MAX_RAW_BYTES: Final = 4 * 1024 * 1024 + 64 * 1024
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


@dataclass(frozen=True, slots=True)
class DeadLetterLimit:
    """How many dead letters of one key are kept in full per window (``RPM_DEAD_LETTER_LIMIT``
    per ``RPM_DEAD_LETTER_WINDOW_S``); beyond it they are counted into the key's summary row.
    ``per_window`` 0: no limit, every letter kept in full."""

    per_window: int = 0
    window_s: int = 60

    @property
    def enabled(self) -> bool:
        return self.per_window > 0


def limit_key(letter: DeadLetter) -> str:
    """What a dead letter is limited by within its source: its device id, else its topic, else
    nothing (one key for the whole source)."""
    return letter.device_id or letter.topic or ""


def window_start(at: datetime, window_s: int) -> datetime:
    """The start of the window holding ``at``: windows of ``window_s`` seconds from the epoch, so
    every process (with a reasonably set clock) puts a letter in the same window."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    seconds = int((at - epoch).total_seconds() // window_s) * window_s
    return epoch + timedelta(seconds=seconds)


@dataclass(frozen=True, slots=True)
class Flood:
    """A key that went over its limit: reported once per key and window (by the one writer whose
    letters crossed it)."""

    source: str
    key: str
    window_start: datetime
    per_window: int
    window_s: int


@dataclass(slots=True)
class DeadLetterWrite:
    """What :func:`insert_dead_letters` did: rows kept in full, letters counted into summaries
    (by source) and the keys that started flooding with this write."""

    kept: int = 0
    suppressed: dict[str, int] = field(default_factory=dict)
    floods: list[Flood] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Group:
    source: str
    key: str
    letters: list[DeadLetter]


def split(
    groups: Sequence[tuple[str, str, int]], totals: dict[tuple[str, str], int], per_window: int
) -> dict[tuple[str, str], int]:
    """How many letters of each (source, key, count in this write) group are kept in full, given
    the key's count in the window after this write (``totals``): the letters that bring it past
    ``per_window`` are not."""
    kept: dict[tuple[str, str], int] = {}
    for source, key, count in groups:
        before = totals[(source, key)] - count
        kept[(source, key)] = max(0, min(count, per_window - before))
    return kept


def insert_dead_letters(
    conn: psycopg.Connection[Any],
    letters: Sequence[DeadLetter],
    *,
    received_at: datetime,
    limit: DeadLetterLimit | None = None,
) -> DeadLetterWrite:
    """Write dead letters in the caller's transaction; with an enabled ``limit``, only the first
    ``limit.per_window`` letters of a key per window in full, the rest counted into the key's
    summary row (no work at all without letters)."""
    written = DeadLetterWrite()
    if not letters:
        return written
    if limit is None or not limit.enabled:
        _insert_full(conn, letters, received_at)
        written.kept = len(letters)
        return written
    by_key: dict[tuple[str, str], _Group] = {}
    for letter in letters:
        k = (letter.source, limit_key(letter))
        group = by_key.get(k)
        if group is None:
            group = by_key[k] = _Group(k[0], k[1], [])
        group.letters.append(letter)
    window = window_start(received_at, limit.window_s)
    ordered = sorted(by_key)  # every writer locks the keys' rows in one order: no deadlock
    cur = conn.execute(
        "INSERT INTO dead_letter_windows AS w (source, limit_key, window_start, letters)"
        " SELECT s, k, %s, n FROM unnest(%s::text[], %s::text[], %s::bigint[]) AS u(s, k, n)"
        " ORDER BY s, k"
        " ON CONFLICT (source, limit_key, window_start)"
        " DO UPDATE SET letters = w.letters + EXCLUDED.letters"
        " RETURNING source, limit_key, letters",
        (
            window,
            [s for s, _ in ordered],
            [k for _, k in ordered],
            [len(by_key[k].letters) for k in ordered],
        ),
    )
    totals = {(row[0], row[1]): int(row[2]) for row in cur.fetchall()}
    kept = split(
        [(s, k, len(by_key[(s, k)].letters)) for s, k in ordered], totals, limit.per_window
    )
    seen: dict[tuple[str, str], int] = {}
    full: list[DeadLetter] = []  # in the order they came
    for letter in letters:
        k = (letter.source, limit_key(letter))
        seen[k] = seen.get(k, 0) + 1
        if seen[k] <= kept[k]:
            full.append(letter)
    summaries: list[tuple[Any, ...]] = []
    for k in ordered:
        group = by_key[k]
        rest = group.letters[kept[k]:]
        if not rest:
            continue
        sample = rest[0]
        summaries.append(
            (received_at, sample.source, sample.topic, sample.device_id, sample.reason, sample.raw,
             len(rest), received_at, group.key, window)
        )
        written.suppressed[group.source] = written.suppressed.get(group.source, 0) + len(rest)
        if totals[k] - len(group.letters) <= limit.per_window:  # the first to go over
            written.floods.append(
                Flood(group.source, group.key, window, limit.per_window, limit.window_s)
            )
    with conn.pipeline():  # the full rows and the summaries: sent together
        _insert_full(conn, full, received_at)
        if summaries:
            with conn.cursor() as c:
                c.executemany(
                    "INSERT INTO dead_letters AS d (received_at, source, topic, device_id, reason,"
                    " raw, suppressed_count, last_seen, limit_key, window_start)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (source, limit_key, window_start) WHERE window_start IS NOT NULL"
                    " DO UPDATE SET suppressed_count = d.suppressed_count + EXCLUDED.suppressed_count,"
                    " last_seen = GREATEST(d.last_seen, EXCLUDED.last_seen)",
                    summaries,
                )
    written.kept = len(full)
    return written


def _insert_full(
    conn: psycopg.Connection[Any], letters: Sequence[DeadLetter], received_at: datetime
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
    " replayed_at, replay_result, suppressed_count, last_seen, window_start"
)


def list_dead_letters(
    conn: psycopg.Connection[Any],
    *,
    limit: int,
    before_id: int | None = None,
    device_id: str | None = None,
    summaries_only: bool = False,
) -> list[dict[str, Any]]:
    return fetch_all(
        conn,
        f"SELECT {_PUBLIC_COLUMNS} FROM dead_letters"
        " WHERE (%(before)s::bigint IS NULL OR id < %(before)s)"
        " AND (%(device)s::text IS NULL OR device_id = %(device)s)"
        " AND (NOT %(summaries)s OR window_start IS NOT NULL)"
        " ORDER BY id DESC LIMIT %(limit)s",
        {"before": before_id, "device": device_id, "summaries": summaries_only, "limit": limit},
    )


def recent_summaries(
    conn: psycopg.Connection[Any], *, since: datetime, limit: int
) -> list[dict[str, Any]]:
    """Summary rows (keys that went over their limit) seen since ``since``, the busiest first."""
    return fetch_all(
        conn,
        "SELECT id, source, topic, device_id, limit_key, window_start, received_at AS first_seen,"
        " last_seen, suppressed_count, reason FROM dead_letters"
        " WHERE window_start IS NOT NULL AND last_seen >= %s"
        " ORDER BY suppressed_count DESC, id DESC LIMIT %s",
        (since, limit),
    )


def get_dead_letter(conn: psycopg.Connection[Any], letter_id: int) -> dict[str, Any] | None:
    return fetch_one(conn, f"SELECT {_PUBLIC_COLUMNS} FROM dead_letters WHERE id = %s", (letter_id,))


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


# --- bounding the table (run by the retention job, each batch its own short transaction)


def delete_expired(conn: psycopg.Connection[Any], cutoff: datetime, batch: int) -> int:
    """Delete up to ``batch`` dead letters (summaries by their last letter) older than
    ``cutoff``, skipping rows a writer holds; the number deleted."""
    cur = conn.execute(
        "DELETE FROM dead_letters WHERE id = ANY(ARRAY("
        " SELECT id FROM dead_letters WHERE received_at < %(cutoff)s"
        " AND (last_seen IS NULL OR last_seen < %(cutoff)s)"
        " LIMIT %(batch)s FOR UPDATE SKIP LOCKED))",
        {"cutoff": cutoff, "batch": batch},
    )
    return cur.rowcount


def delete_oldest(conn: psycopg.Connection[Any], count: int, *, open_since: datetime) -> int:
    """Delete up to ``count`` of the oldest dead letters (by id), but not the summaries of
    windows from ``open_since`` on (still counting), nor rows a writer holds; the number deleted."""
    cur = conn.execute(
        "DELETE FROM dead_letters WHERE id = ANY(ARRAY("
        " SELECT id FROM dead_letters WHERE window_start IS NULL OR window_start < %s"
        " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED))",
        (open_since, count),
    )
    return cur.rowcount


def delete_past_windows(conn: psycopg.Connection[Any], before: datetime) -> int:
    """Forget the per-key counts of windows that started before ``before``."""
    return conn.execute(
        "DELETE FROM dead_letter_windows WHERE window_start < %s", (before,)
    ).rowcount

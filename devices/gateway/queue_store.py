"""The durable store-and-forward queue: one SQLite file, one writer thread.

Tables:
- ``queue``: one row per queued message (readings of one device that travel together, such as a
  blood-pressure panel), oldest first by ``id``. A row is deleted only once the broker has
  acknowledged the message that carried it. (Files written before schema 2 called it ``outbox``;
  opening one renames the table, in the same transaction that checks the schema.)
- ``reading_keys``: the natural key (device, metric, measured-at) of every reading kept recently,
  so a value the device sends twice (a re-fetched record, a re-sent indication) is queued once.
- ``record_cursors``: per device and record stream, the last stored-record sequence number kept;
  written in the same transaction as the records, so a crash loses both or neither.
- ``counters``: published / dropped / duplicate readings, kept across restarts.
- ``devices``: last battery level seen per device.

Durability: WAL journal, ``synchronous=FULL`` (every commit is fsynced; a power cut loses nothing
committed), ``journal_size_limit`` so the WAL is truncated after checkpoints. Size: when the
queued payload bytes exceed ``max_bytes`` the oldest rows are deleted (counted as dropped, with a
warning); a warning is also logged once when the queue passes ``warn_ratio`` of its limit.

Not thread-safe by design: :class:`~devices.gateway.queue.AsyncQueue` calls it from one thread.
One process at a time: a lock file next to the queue refuses a second gateway on the same queue.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

from devices.ble.collector_api import RecordCursor
from devices.errors import QueueStorageError

logger = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 2  # 2: the ``outbox`` table of schema 1 renamed ``queue``
_SCHEMA: Final = (
    """
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    readings TEXT NOT NULL,
    n_readings INTEGER NOT NULL,
    size INTEGER NOT NULL,
    enqueued_at TEXT NOT NULL
)
""",
    """
CREATE TABLE IF NOT EXISTS reading_keys (
    device_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    measured_at TEXT NOT NULL,
    kept_at TEXT NOT NULL,
    PRIMARY KEY (device_id, metric, measured_at)
) WITHOUT ROWID
""",
    "CREATE INDEX IF NOT EXISTS reading_keys_kept_at ON reading_keys (kept_at)",
    """
CREATE TABLE IF NOT EXISTS record_cursors (
    address TEXT NOT NULL,
    stream TEXT NOT NULL,
    last_sequence INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (address, stream)
) WITHOUT ROWID
""",
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    """
CREATE TABLE IF NOT EXISTS devices (
    address TEXT PRIMARY KEY,
    battery_percent INTEGER,
    battery_at TEXT
) WITHOUT ROWID
""",
)
_PRUNE_EVERY: Final = 500
_DROP_BATCH: Final = 64

Synchronous = Literal["FULL", "NORMAL", "EXTRA"]


@dataclass(frozen=True, slots=True)
class Entry:
    """Readings of one device to queue as one message (they must travel together)."""

    device_id: str
    readings: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    id: int
    device_id: str
    readings: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class QueueStats:
    messages: int
    readings: int
    bytes: int
    max_bytes: int
    published: int
    dropped: int
    duplicates: int


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    queued: int
    duplicates: int
    dropped: int


def reading_key(reading: dict[str, Any]) -> tuple[str, str]:
    """(metric, measured_at in UTC) of a wire reading."""
    moment = datetime.fromisoformat(str(reading["measured_at"])).astimezone(UTC)
    return str(reading["metric"]), moment.isoformat()


class QueueStore:
    """Synchronous SQLite queue. Use from one thread only."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int,
        warn_ratio: float = 0.9,
        dedupe_window: timedelta = timedelta(days=30),
        synchronous: Synchronous = "FULL",
    ) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.path = path
        self.max_bytes = max_bytes
        self._warn_bytes = int(max_bytes * warn_ratio)
        self._dedupe_window = dedupe_window
        self._warned = False
        self._since_prune = 0
        self._lock_fd = _lock(path)
        try:
            self._db = _open(path, synchronous)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._bytes = int(self._db.execute("SELECT COALESCE(SUM(size), 0) FROM queue").fetchone()[0])
        self._prune_keys()

    def close(self) -> None:
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            logger.warning("queue checkpoint on close failed: %s", exc)
        self._db.close()
        os.close(self._lock_fd)  # releases the lock

    # writing ----------------------------------------------------------------------------------

    def enqueue(
        self, entries: Sequence[Entry], cursor: RecordCursor | None = None, *, now: datetime
    ) -> EnqueueResult:
        """Queue ``entries`` (dropping readings already kept) and store ``cursor``, atomically."""
        stamp = now.astimezone(UTC).isoformat()
        queued = duplicates = 0
        try:
            with self._transaction():
                for entry in entries:
                    fresh = [r for r in entry.readings if self._claim_key(entry.device_id, r, stamp)]
                    duplicates += len(entry.readings) - len(fresh)
                    if fresh:
                        self._insert(entry.device_id, fresh, stamp)
                        queued += len(fresh)
                if cursor is not None:
                    self._db.execute(
                        "INSERT INTO record_cursors (address, stream, last_sequence, updated_at) "
                        "VALUES (?, ?, ?, ?) ON CONFLICT (address, stream) DO UPDATE SET "
                        "last_sequence = excluded.last_sequence, updated_at = excluded.updated_at",
                        (cursor.address, cursor.stream, cursor.sequence, stamp),
                    )
                dropped = self._enforce_bound()
                self._bump("duplicate_readings", duplicates)
                self._bump("dropped_readings", dropped)
        except sqlite3.Error as exc:
            self._bytes = int(self._db.execute("SELECT COALESCE(SUM(size), 0) FROM queue").fetchone()[0])
            raise QueueStorageError(f"cannot queue readings: {exc}") from exc
        self._after_write()
        return EnqueueResult(queued, duplicates, dropped)

    def _claim_key(self, device_id: str, reading: dict[str, Any], stamp: str) -> bool:
        metric, measured_at = reading_key(reading)
        cur = self._db.execute(
            "INSERT OR IGNORE INTO reading_keys (device_id, metric, measured_at, kept_at) "
            "VALUES (?, ?, ?, ?)",
            (device_id, metric, measured_at, stamp),
        )
        return cur.rowcount == 1

    def _insert(self, device_id: str, readings: list[dict[str, Any]], stamp: str) -> None:
        text = json.dumps(readings, separators=(",", ":"), ensure_ascii=False)
        size = len(text.encode("utf-8"))
        self._db.execute(
            "INSERT INTO queue (device_id, readings, n_readings, size, enqueued_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (device_id, text, len(readings), size, stamp),
        )
        self._bytes += size

    def _enforce_bound(self) -> int:
        dropped = 0
        while self._bytes > self.max_bytes:
            rows = self._db.execute(
                "SELECT id, n_readings, size FROM queue ORDER BY id LIMIT ?", (_DROP_BATCH,)
            ).fetchall()
            if not rows:
                break
            doomed: list[int] = []
            for row_id, n_readings, size in rows:
                if self._bytes <= self.max_bytes:
                    break
                doomed.append(row_id)
                dropped += n_readings
                self._bytes -= size
            self._db.execute(
                f"DELETE FROM queue WHERE id IN ({','.join('?' * len(doomed))})", doomed
            )
        if dropped:
            logger.warning(
                "gateway queue full (%d bytes): dropped the %d oldest reading(s)",
                self.max_bytes, dropped,
            )
        return dropped

    def ack(self, ids: Sequence[int]) -> int:
        """Delete acknowledged messages; returns how many readings they held."""
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        try:
            with self._transaction():
                rows = self._db.execute(
                    f"SELECT COALESCE(SUM(n_readings), 0), COALESCE(SUM(size), 0), COUNT(*) "
                    f"FROM queue WHERE id IN ({marks})",
                    list(ids),
                ).fetchone()
                self._db.execute(f"DELETE FROM queue WHERE id IN ({marks})", list(ids))
                self._bump("published_readings", int(rows[0]))
                self._bump("published_messages", int(rows[2]))
        except sqlite3.Error as exc:
            raise QueueStorageError(f"cannot remove acknowledged messages: {exc}") from exc
        self._bytes -= int(rows[1])
        self._after_write()
        return int(rows[0])

    def set_battery(self, address: str, percent: int, at: datetime) -> None:
        try:
            with self._transaction():
                self._db.execute(
                    "INSERT INTO devices (address, battery_percent, battery_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (address) DO UPDATE SET battery_percent = excluded.battery_percent,"
                    " battery_at = excluded.battery_at",
                    (address, percent, at.astimezone(UTC).isoformat()),
                )
        except sqlite3.Error as exc:
            raise QueueStorageError(f"cannot record the battery level: {exc}") from exc

    # reading ----------------------------------------------------------------------------------

    def peek(self, after_id: int, limit: int) -> list[QueuedMessage]:
        """The oldest queued messages with ``id > after_id``."""
        try:
            rows = self._db.execute(
                "SELECT id, device_id, readings FROM queue WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        except sqlite3.Error as exc:
            raise QueueStorageError(f"cannot read the queue: {exc}") from exc
        return [QueuedMessage(row[0], row[1], json.loads(row[2])) for row in rows]

    def last_sequence(self, address: str, stream: str) -> int | None:
        try:
            row = self._db.execute(
                "SELECT last_sequence FROM record_cursors WHERE address = ? AND stream = ?",
                (address, stream),
            ).fetchone()
        except sqlite3.Error as exc:
            raise QueueStorageError(f"cannot read the record cursor: {exc}") from exc
        return None if row is None else int(row[0])

    def battery(self, address: str) -> int | None:
        row = self._db.execute(
            "SELECT battery_percent FROM devices WHERE address = ?", (address,)
        ).fetchone()
        return None if row is None else row[0]

    def stats(self) -> QueueStats:
        try:
            messages, readings = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(n_readings), 0) FROM queue"
            ).fetchone()
            counters = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
        except sqlite3.Error as exc:
            raise QueueStorageError(f"cannot read queue statistics: {exc}") from exc
        return QueueStats(
            messages=int(messages),
            readings=int(readings),
            bytes=self._bytes,
            max_bytes=self.max_bytes,
            published=int(counters.get("published_readings", 0)),
            dropped=int(counters.get("dropped_readings", 0)),
            duplicates=int(counters.get("duplicate_readings", 0)),
        )

    # helpers ----------------------------------------------------------------------------------

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def _bump(self, name: str, amount: int) -> None:
        if amount:
            self._db.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                (name, amount),
            )

    def _after_write(self) -> None:
        if self._bytes >= self._warn_bytes and not self._warned:
            self._warned = True
            logger.warning(
                "gateway queue is %d%% full (%d of %d bytes): is the broker reachable?",
                100 * self._bytes // self.max_bytes, self._bytes, self.max_bytes,
            )
        elif self._bytes < self._warn_bytes * 0.8:
            self._warned = False
        self._since_prune += 1
        if self._since_prune >= _PRUNE_EVERY:
            self._prune_keys()

    def _prune_keys(self) -> None:
        self._since_prune = 0
        horizon = (datetime.now(UTC) - self._dedupe_window).isoformat()
        try:
            with self._transaction():
                self._db.execute("DELETE FROM reading_keys WHERE kept_at < ?", (horizon,))
        except sqlite3.Error as exc:
            logger.warning("pruning old reading keys failed: %s", exc)


def _open(path: Path, synchronous: Synchronous) -> sqlite3.Connection:
    """The queue file, durable and at the current schema; :class:`QueueStorageError` if not."""
    try:
        db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise QueueStorageError(f"cannot open the queue at {path}: {exc}") from exc
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute("PRAGMA journal_size_limit=4194304")
        db.execute("PRAGMA busy_timeout=5000")
        with _Transaction(db):
            _prepare_schema(db, path)
    except sqlite3.Error as exc:
        db.close()
        raise QueueStorageError(f"cannot open the queue at {path}: {exc}") from exc
    except QueueStorageError:
        db.close()
        raise
    return db


def _prepare_schema(db: sqlite3.Connection, path: Path) -> None:
    """Create the tables, or bring a file of an older schema up to date (in the caller's
    transaction: a crash leaves the file as it was)."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version not in (0, 1, SCHEMA_VERSION):
        raise QueueStorageError(f"{path} has queue schema {version}, expected {SCHEMA_VERSION}")
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "outbox" in tables and "queue" not in tables:
        db.execute("ALTER TABLE outbox RENAME TO queue")
        logger.info("queue file %s: table 'outbox' renamed 'queue' (schema %d)", path, SCHEMA_VERSION)
    for statement in _SCHEMA:
        db.execute(statement)
    if version != SCHEMA_VERSION:
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _lock(path: Path) -> int:
    """Hold ``<queue>.lock`` exclusively: two gateways draining one queue would publish every
    reading twice (under two gateway ids), so the second one is refused."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise QueueStorageError(f"cannot create the queue lock next to {path}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise QueueStorageError(
            f"the queue at {path} is in use by another gateway process"
        ) from None
    return fd


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            self._db.execute("COMMIT")
        else:
            self._db.execute("ROLLBACK")

"""A queue file written before the queue table was called ``queue`` opens with nothing lost."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devices.errors import QueueStorageError
from devices.gateway.queue_store import SCHEMA_VERSION, Entry, QueueStore

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def reading(i: int) -> dict[str, Any]:
    """Wire reading number ``i``: a heart rate a minute."""
    moment = NOW - timedelta(hours=1) + timedelta(minutes=i)
    return {"metric": "heart_rate", "value": 60.0 + i, "unit": "/min", "measured_at": moment.isoformat()}


# Schema 1, as gateways wrote it: the queued messages in a table named ``outbox``.
SCHEMA_1 = """
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL,
    readings TEXT NOT NULL,
    n_readings INTEGER NOT NULL,
    size INTEGER NOT NULL,
    enqueued_at TEXT NOT NULL
);
CREATE TABLE reading_keys (
    device_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    measured_at TEXT NOT NULL,
    kept_at TEXT NOT NULL,
    PRIMARY KEY (device_id, metric, measured_at)
) WITHOUT ROWID;
CREATE INDEX reading_keys_kept_at ON reading_keys (kept_at);
CREATE TABLE record_cursors (
    address TEXT NOT NULL,
    stream TEXT NOT NULL,
    last_sequence INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (address, stream)
) WITHOUT ROWID;
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE devices (address TEXT PRIMARY KEY, battery_percent INTEGER, battery_at TEXT) WITHOUT ROWID;
PRAGMA user_version = 1;
"""


def old_queue(path: Path) -> list[str]:
    """A schema-1 file holding messages 1 and 2 (3 was acknowledged); their payloads."""
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_1)
    payloads = []
    for i in range(3):
        text = json.dumps([reading(i)], separators=(",", ":"))
        payloads.append(text)
        db.execute(
            "INSERT INTO outbox (device_id, readings, n_readings, size, enqueued_at)"
            " VALUES ('DEV0001', ?, 1, ?, ?)",
            (text, len(text.encode()), NOW.isoformat()),
        )
        metric, moment = reading(i)["metric"], datetime.fromisoformat(reading(i)["measured_at"])
        db.execute(
            "INSERT INTO reading_keys VALUES ('DEV0001', ?, ?, ?)",
            (metric, moment.astimezone(UTC).isoformat(), NOW.isoformat()),
        )
    db.execute("DELETE FROM outbox WHERE id = 3")
    db.execute("INSERT INTO counters VALUES ('published_readings', 7)")
    db.execute(
        "INSERT INTO record_cursors VALUES ('F0:00:00:00:00:01', 'glucose', 41, ?)", (NOW.isoformat(),)
    )
    db.commit()
    db.close()
    return payloads[:2]


def tables(path: Path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        db.close()


def test_an_old_outbox_table_becomes_the_queue_with_everything_in_it(tmp_path: Path) -> None:
    path = tmp_path / "gateway-queue.sqlite3"
    payloads = old_queue(path)
    store = QueueStore(path, max_bytes=10_000_000)
    queued = store.peek(0, 10)
    assert [(m.id, m.device_id, m.readings) for m in queued] == [
        (1, "DEV0001", json.loads(payloads[0])),
        (2, "DEV0001", json.loads(payloads[1])),
    ]
    stats = store.stats()
    assert (stats.messages, stats.readings, stats.published) == (2, 1 + 1, 7)
    assert stats.bytes == sum(len(p.encode()) for p in payloads)
    assert store.last_sequence("F0:00:00:00:00:01", "glucose") == 41
    # the reading keys came along (a reading queued before is still a duplicate) and the ids
    # go on after the highest ever used (AUTOINCREMENT's sequence was renamed with the table)
    result = store.enqueue([Entry("DEV0001", [reading(1), reading(5)])], now=NOW)
    assert (result.queued, result.duplicates) == (1, 1)
    assert [m.id for m in store.peek(2, 10)] == [4]
    assert store.ack([1, 2, 4]) == 3
    store.close()
    assert {"queue", "reading_keys"} <= tables(path) and "outbox" not in tables(path)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    db.close()
    reopened = QueueStore(path, max_bytes=10_000_000)  # the upgraded file opens as it is
    assert reopened.stats().messages == 0 and reopened.stats().published == 10
    reopened.close()


def test_a_new_file_has_a_queue_table_and_no_outbox(tmp_path: Path) -> None:
    path = tmp_path / "gateway-queue.sqlite3"
    QueueStore(path, max_bytes=1000).close()
    assert "queue" in tables(path) and "outbox" not in tables(path)


def test_a_refused_file_is_left_as_it_was_and_unlocked(tmp_path: Path) -> None:
    path = tmp_path / "gateway-queue.sqlite3"
    old_queue(path)
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 7")
    db.close()
    with pytest.raises(QueueStorageError, match="schema 7"):
        QueueStore(path, max_bytes=1000)
    assert "outbox" in tables(path) and "queue" not in tables(path)
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 1")
    db.close()
    QueueStore(path, max_bytes=10_000_000).close()  # the refusal released the lock
    assert "queue" in tables(path) and "outbox" not in tables(path)

"""The on-disk queue: durability settings, atomic cursors, de-duplication, bounded size."""

from __future__ import annotations

import json
import logging
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from devices.ble.collector_api import RecordCursor
from devices.errors import QueueStorageError
from devices.gateway.queue_store import Entry, QueueStore
from tests.support.gateway import entries, reading

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def open_store(path: Path, max_bytes: int = 10_000_000) -> QueueStore:
    return QueueStore(path / "queue.sqlite3", max_bytes=max_bytes)


def test_wal_and_full_fsync_are_on(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    db = store._db  # noqa: SLF001 - checking the pragmas the durability claim rests on
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()


def test_messages_come_back_in_order_and_leave_only_when_acknowledged(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.enqueue(entries(5, devices=("A", "B")), now=NOW)
    rows = store.peek(0, 100)
    assert [r.device_id for r in rows] == ["A", "B", "A", "B", "A"]
    assert [r.readings[0]["measured_at"] for r in rows] == [reading(i)["measured_at"] for i in range(5)]
    assert store.peek(rows[2].id, 100) == rows[3:]
    assert store.ack([rows[0].id, rows[1].id]) == 2
    assert store.ack([rows[0].id]) == 0  # a repeated PUBACK deletes nothing more
    assert [r.id for r in store.peek(0, 100)] == [r.id for r in rows[2:]]
    stats = store.stats()
    assert (stats.messages, stats.readings, stats.published) == (3, 3, 2)
    store.close()


def test_queue_and_counters_survive_reopening(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.enqueue(entries(3), RecordCursor("F0:00:00:00:00:01", "glucose", 7), now=NOW)
    store.ack([store.peek(0, 1)[0].id])
    store.close()
    again = open_store(tmp_path)
    assert len(again.peek(0, 100)) == 2
    assert again.last_sequence("F0:00:00:00:00:01", "glucose") == 7
    assert again.stats().published == 1
    rows = again.peek(0, 100)
    assert again.stats().bytes == sum(len(json.dumps(r.readings, separators=(",", ":"))) for r in rows)
    again.close()


def test_a_reading_seen_before_is_not_queued_again(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    first = store.enqueue([Entry("A", [reading(1), reading(2)])], now=NOW)
    # the same instants written with another offset are the same readings
    shifted = [
        {**reading(1), "measured_at": datetime.fromisoformat(reading(1)["measured_at"])
         .astimezone(timezone(timedelta(hours=-5))).isoformat()},
        reading(3),
    ]
    second = store.enqueue([Entry("A", shifted), Entry("B", [reading(1)])], now=NOW)
    assert (first.queued, first.duplicates) == (2, 0)
    assert (second.queued, second.duplicates) == (2, 1)  # device B's reading is its own
    assert store.stats().duplicates == 1
    store.close()


def test_cursor_and_readings_commit_together_or_not_at_all(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    bad = Entry("A", [reading(1), {"metric": "heart_rate", "measured_at": "not a time"}])
    with pytest.raises(ValueError):
        store.enqueue([bad], RecordCursor("F0:00:00:00:00:01", "glucose", 9), now=NOW)
    assert store.peek(0, 10) == []
    assert store.last_sequence("F0:00:00:00:00:01", "glucose") is None
    store.enqueue([Entry("A", [reading(1)])], RecordCursor("F0:00:00:00:00:01", "glucose", 9), now=NOW)
    assert store.last_sequence("F0:00:00:00:00:01", "glucose") == 9
    store.close()


def test_a_full_queue_drops_the_oldest_first_counts_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    one = len(json.dumps([reading(0)], separators=(",", ":")))  # one queued row's size
    store = open_store(tmp_path, max_bytes=one * 10)
    caplog.set_level(logging.WARNING, logger="devices.gateway.queue_store")
    store.enqueue(entries(9), now=NOW)
    assert any("% full" in r.getMessage() for r in caplog.records)  # nearly full
    caplog.clear()
    result = store.enqueue(entries(6, start=9), now=NOW)
    assert result.dropped > 0
    kept = [r.readings[0]["measured_at"] for r in store.peek(0, 100)]
    expected_all = [reading(i)["measured_at"] for i in range(15)]
    assert kept == expected_all[len(expected_all) - len(kept):]  # the newest survive, in order
    stats = store.stats()
    assert stats.bytes <= stats.max_bytes
    assert stats.dropped == result.dropped == 15 - len(kept)
    assert any("dropped the" in r.getMessage() for r in caplog.records)
    store.close()


def test_battery_levels_are_kept_per_device(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.set_battery("F0:00:00:00:00:01", 40, NOW)
    store.set_battery("F0:00:00:00:00:01", 12, NOW)
    assert store.battery("F0:00:00:00:00:01") == 12
    assert store.battery("F0:00:00:00:00:02") is None
    store.close()


def test_a_foreign_or_corrupt_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "queue.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(QueueStorageError):
        open_store(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    db = sqlite3.connect(other / "queue.sqlite3")
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(QueueStorageError, match="schema 99"):
        open_store(other)


def test_max_bytes_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        open_store(tmp_path, max_bytes=0)


def test_one_gateway_per_queue(tmp_path: Path) -> None:
    first = open_store(tmp_path)
    with pytest.raises(QueueStorageError, match="in use by another gateway"):
        open_store(tmp_path)
    first.close()
    open_store(tmp_path).close()  # released on close


WRITER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from devices.ble.collector_api import RecordCursor
from devices.gateway.queue_store import Entry, QueueStore
from tests.support.gateway import reading
store = QueueStore(Path(sys.argv[1]), max_bytes=10**8)
i = 0
while True:
    store.enqueue([Entry("A", [reading(i)])], RecordCursor("F0:00:00:00:00:01", "glucose", i),
                  now=datetime.now(UTC))
    print(i, flush=True)
    i += 1
"""


def test_a_writer_killed_mid_stream_keeps_every_committed_reading_and_its_cursor(
    tmp_path: Path,
) -> None:
    path = tmp_path / "queue.sqlite3"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert writer.stdout is not None
    committed = -1
    for line in writer.stdout:
        committed = int(line)
        if committed >= 150:
            break
    writer.send_signal(signal.SIGKILL)
    writer.wait(10)
    store = open_store(tmp_path)
    kept = [r.readings[0]["measured_at"] for r in store.peek(0, 10_000)]
    cursor = store.last_sequence("F0:00:00:00:00:01", "glucose")
    assert cursor is not None and cursor >= committed
    # the cursor never runs ahead of the readings it was committed with, and nothing is lost
    assert kept == [reading(i)["measured_at"] for i in range(cursor + 1)]
    store.close()

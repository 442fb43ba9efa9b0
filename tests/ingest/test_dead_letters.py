"""The one dead-letter builder: what every source keeps of refused input, and how the dead-letter
limit keys, windows and splits letters (no database needed)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from ingest.pipeline import Envelope
from ingest.store.deadletters import (
    MAX_RAW_BYTES,
    MAX_REASON_CHARS,
    DeadLetter,
    limit_key,
    split,
    window_start,
)


def test_small_input_is_kept_as_it_is() -> None:
    letter = DeadLetter.build("mqtt", "payload is not UTF-8", b"\xff\xfe", topic="rpm/D/readings",
                              device_id="D", reading_index=3)
    assert letter == DeadLetter(
        source="mqtt", reason="payload is not UTF-8", raw=b"\xff\xfe", topic="rpm/D/readings",
        device_id="D", reading_index=3,
    )


def test_raw_bytes_are_kept_up_to_the_cap_and_the_reason_says_they_were_cut() -> None:
    assert MAX_RAW_BYTES == 4 * 1024 * 1024 + 64 * 1024  # an ECG message and its topic
    exact = DeadLetter.build("http", "bad", b"x" * MAX_RAW_BYTES)
    assert exact.raw == b"x" * MAX_RAW_BYTES and exact.reason == "bad"
    over = DeadLetter.build("http", "bad", b"x" * MAX_RAW_BYTES + b"yz")
    assert over.raw == b"x" * MAX_RAW_BYTES
    assert over.reason == f"bad (raw bytes truncated to {MAX_RAW_BYTES})"


def test_the_reason_is_cut_to_its_cap_whatever_was_appended() -> None:
    assert MAX_REASON_CHARS == 2000
    long = DeadLetter.build("mqtt", "r" * 5000, b"{}")
    assert long.reason == "r" * MAX_REASON_CHARS
    both = DeadLetter.build("mqtt", "r" * 1990, b"x" * (MAX_RAW_BYTES + 1))
    assert len(both.reason) == MAX_REASON_CHARS and both.reason.startswith("r" * 1990 + " (raw")


def test_an_envelope_letters_itself_or_one_of_its_readings() -> None:
    env = Envelope(source="mqtt", raw=b'{"readings": []}', received_at=datetime.now(UTC),
                   device_id="D-1", topic="rpm/D-1/readings")
    assert env.dead_letter("empty") == DeadLetter(
        source="mqtt", reason="empty", raw=b'{"readings": []}', topic="rpm/D-1/readings", device_id="D-1"
    )
    reading = env.dead_letter("implausible", raw=b'{"value": 900}', index=2)
    assert (reading.raw, reading.reading_index, reading.topic) == (b'{"value": 900}', 2, "rpm/D-1/readings")
    huge = Envelope(source="http", raw=b"x" * (MAX_RAW_BYTES + 10), received_at=datetime.now(UTC))
    assert len(huge.dead_letter("not JSON").raw) == MAX_RAW_BYTES


def test_the_broker_never_delivers_a_message_its_dead_letter_would_cut() -> None:
    conf = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "mosquitto.conf"
    found = re.search(r"^max_packet_size\s+(\d+)\s*$", conf.read_text(), re.MULTILINE)
    assert found is not None
    assert int(found.group(1)) <= MAX_RAW_BYTES


def test_a_letter_is_limited_by_its_device_else_its_topic_else_its_source() -> None:
    assert limit_key(DeadLetter.build("mqtt", "r", b"", topic="rpm/D/readings", device_id="D")) == "D"
    assert limit_key(DeadLetter.build("mqtt", "r", b"", topic="rpm/bad id/readings")) == "rpm/bad id/readings"
    assert limit_key(DeadLetter.build("http", "r", b"")) == ""


def test_windows_start_at_multiples_of_their_length_from_the_epoch() -> None:
    at = datetime(2026, 12, 5, 6, 7, 59, 999_999, tzinfo=UTC)
    assert window_start(at, 60) == datetime(2026, 12, 5, 6, 7, tzinfo=UTC)
    assert window_start(at, 3600) == datetime(2026, 12, 5, 6, 0, tzinfo=UTC)
    edge = datetime(2026, 12, 5, 6, 8, tzinfo=UTC)
    assert window_start(edge, 60) == edge


def test_the_letters_that_bring_a_key_past_its_limit_are_not_kept_in_full() -> None:
    groups = [("mqtt", "A", 4), ("mqtt", "B", 3), ("mqtt", "C", 2), ("http", "", 5)]
    totals = {("mqtt", "A"): 4, ("mqtt", "B"): 9, ("mqtt", "C"): 12, ("http", ""): 5}
    assert split(groups, totals, 5) == {
        ("mqtt", "A"): 4,  # 0 before: all four fit
        ("mqtt", "B"): 0,  # 6 before: already over
        ("mqtt", "C"): 0,  # 10 before
        ("http", ""): 5,  # exactly the limit
    }
    assert split([("mqtt", "A", 4)], {("mqtt", "A"): 7}, 5) == {("mqtt", "A"): 2}  # 3 before: 2 fit

"""The one dead-letter builder: what every source keeps of refused input (no database needed)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from ingest.pipeline import Envelope
from ingest.store.deadletters import MAX_RAW_BYTES, MAX_REASON_CHARS, DeadLetter


def test_small_input_is_kept_as_it_is() -> None:
    letter = DeadLetter.build("mqtt", "payload is not UTF-8", b"\xff\xfe", topic="rpm/D/readings",
                              device_id="D", reading_index=3)
    assert letter == DeadLetter(
        source="mqtt", reason="payload is not UTF-8", raw=b"\xff\xfe", topic="rpm/D/readings",
        device_id="D", reading_index=3,
    )


def test_raw_bytes_are_kept_up_to_the_cap_and_the_reason_says_they_were_cut() -> None:
    assert MAX_RAW_BYTES == 1024 * 1024
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

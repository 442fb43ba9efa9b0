"""Pure pieces of the collector: Blood Pressure Record framing, transfer cursors, addresses."""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime

import pytest

from devices.ble import racp
from devices.ble.collector_api import Observation, RecordCursor
from devices.ble.collector_loop import normalise_address
from devices.ble.collector_records import RecordAssembler, RecordValue
from devices.ble.collector_transfer import Outcome, Transfer, outcome_of, request_for
from devices.errors import MalformedPayload

# Blood Pressure Measurement 120/80/93 mmHg, no options (SFLOAT 120 = 78 00, 80 = 50 00, 93 = 5d 00)
BPM = bytes.fromhex("00780050005d00")


def test_a_single_segment_record() -> None:
    # header 0x03 (first + last), sequence 0x0102, UUID 0x2A35, then the measurement
    value = bytes.fromhex("03" "0201" "352a") + BPM
    assert RecordAssembler().feed(value) == RecordValue(0x0102, 0x2A35, BPM)


def test_a_record_in_three_segments() -> None:
    assembler = RecordAssembler()
    body = bytes.fromhex("0700" "352a") + BPM
    assert assembler.feed(bytes((0x01,)) + body[:3]) is None  # first, counter 0
    assert assembler.feed(bytes((0x04,)) + body[3:7]) is None  # middle, counter 1
    assert assembler.feed(bytes((0x0A,)) + body[7:]) == RecordValue(7, 0x2A35, BPM)  # last, 2


@pytest.mark.parametrize(
    ("segments", "reason"),
    [
        ([b""], "empty"),
        ([bytes.fromhex("030100")], "needs sequence number"),
        ([bytes.fromhex("020100")], "without a first segment"),
        ([bytes.fromhex("01aa"), bytes.fromhex("01bb")], "before the last ended"),
        ([bytes.fromhex("01aa"), bytes.fromhex("0Abb")], "out of order"),  # counter 2 after 0
        ([bytes.fromhex("01") + bytes(600), bytes.fromhex("04") + bytes(600)], "over 1024"),
    ],
)
def test_broken_framing_is_malformed_and_forgotten(segments: list[bytes], reason: str) -> None:
    assembler = RecordAssembler()
    with pytest.raises(MalformedPayload, match=reason):
        for segment in segments:
            assembler.feed(segment)
    # the next well-formed record is not poisoned by the broken one
    assert assembler.feed(bytes.fromhex("03" "0500" "352a") + BPM) == RecordValue(5, 0x2A35, BPM)


def test_framing_fuzz_raises_only_malformed_payload() -> None:
    seed = int(os.environ.get("RPM_FUZZ_SEED", random.randrange(2**32)))
    print(f"RPM_FUZZ_SEED={seed}")  # noqa: T201 - pin a failing run
    rng = random.Random(seed)
    assembler = RecordAssembler()
    for _ in range(5000):
        value = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
        try:
            result = assembler.feed(value)
        except MalformedPayload:
            continue
        assert result is None or isinstance(result, RecordValue)


def test_requests_start_after_the_cursor() -> None:
    assert request_for(None) == bytes.fromhex("0101")
    assert request_for(9) == bytes.fromhex("0103010a00")
    assert request_for(0xFFFF) == bytes.fromhex("0101")  # no sequence after the last one


@pytest.mark.parametrize(
    ("indication", "outcome"),
    [
        ("06000101", Outcome.COMPLETE),
        ("06000106", Outcome.NO_RECORDS),
        ("06000108", Outcome.INTERRUPTED),
        ("06000103", Outcome.REFUSED),
        ("06000301", None),  # the answer to an abort, not to the report
        ("05000300", None),  # a record count
    ],
)
def test_racp_answers(indication: str, outcome: Outcome | None) -> None:
    assert outcome_of(racp.parse_response(bytes.fromhex(indication))) is outcome


def _obs() -> Observation:
    return Observation("F0:00:00:00:00:01", "2a18", (), datetime(2026, 1, 1, tzinfo=UTC), None)


def test_the_cursor_moves_only_on_a_completed_transfer() -> None:
    transfer = Transfer("F0:00:00:00:00:01", "glucose", 4)
    for sequence in (5, 7, 6):
        transfer.add(sequence, _obs())
    assert transfer.cursor(Outcome.COMPLETE) == RecordCursor("F0:00:00:00:00:01", "glucose", 7)
    assert transfer.cursor(Outcome.INTERRUPTED) is None
    assert transfer.cursor(Outcome.REFUSED) is None
    assert Transfer("F0:00:00:00:00:01", "glucose", 4).cursor(Outcome.NO_RECORDS) is None
    stale = Transfer("F0:00:00:00:00:01", "glucose", 10)
    stale.add(3, _obs())  # a device that answered with older records: keep the cursor
    assert stale.cursor(Outcome.COMPLETE) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("f0f1f2f3f4f5", "F0:F1:F2:F3:F4:F5"),
        ("F0-F1-F2-F3-F4-F5", "F0:F1:F2:F3:F4:F5"),
        ("f0:f1:f2:f3:f4:f5", "F0:F1:F2:F3:F4:F5"),
    ],
)
def test_addresses_are_normalised(text: str, expected: str) -> None:
    assert normalise_address(text) == expected


@pytest.mark.parametrize("text", ["", "F0:F1", "G0:F1:F2:F3:F4:F5", "F0:F1:F2:F3:F4:F5:F6", "x" * 1000])
def test_bad_addresses_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        normalise_address(text)

"""MLLP framing against hostile input: whole frames out, oversized and broken frames reported,
bytes outside frames dropped; a seeded fuzz run raises nothing (RPM_FUZZ_SEED pins the seed)."""

from __future__ import annotations

import os
import random
import sys

from hl7_export import Broken, Deframer, Frame, Oversized, frame


def feed_bytewise(d: Deframer, data: bytes) -> list[object]:
    return [event for n in range(len(data)) for event in d.feed(data[n : n + 1])]


def test_frames_split_anywhere_come_out_whole() -> None:
    data = b"noise" + frame(b"MSH|one") + b"\r\n" + frame(b"MSH|two")
    assert feed_bytewise(Deframer(64), data) == [Frame(b"MSH|one"), Frame(b"MSH|two")]
    d = Deframer(64)
    assert d.feed(data) == [Frame(b"MSH|one"), Frame(b"MSH|two")]
    assert d.garbage_bytes == 7 and not d.in_frame


def test_an_oversized_frame_is_skipped_to_its_end_and_the_next_one_read() -> None:
    d = Deframer(16)
    events = feed_bytewise(d, frame(b"x" * 100) + frame(b"ok"))
    assert events == [Oversized(100), Frame(b"ok")]


def test_a_frame_cut_short_by_a_new_start_is_reported() -> None:
    assert Deframer(64).feed(b"\x0bMSH|cut\x0bMSH|next\x1c\x0d") == [Broken(b"MSH|cut"), Frame(b"MSH|next")]


def test_an_end_block_split_across_reads() -> None:
    d = Deframer(16)
    assert d.feed(b"\x0b" + b"y" * 16 + b"\x1c") == []
    assert d.feed(b"\x0d") == [Frame(b"y" * 16)]


def test_seeded_fuzz_only_documented_events() -> None:
    seed = int(os.environ.get("RPM_FUZZ_SEED", random.randrange(2**32)))
    print(f"fuzz seed {seed} (set RPM_FUZZ_SEED to reproduce)", file=sys.stderr)  # noqa: T201
    rng = random.Random(seed)
    alphabet = [b"\x0b", b"\x1c", b"\x0d", b"\x1c\x0d", b"MSH|", b"a", b"\x00", b"\xff"]
    for _ in range(300):
        d = Deframer(32)
        data = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(200)))
        events = []
        for cut in sorted(rng.sample(range(len(data) + 1), min(5, len(data) + 1))):
            events += d.feed(data[:cut])
            data = data[cut:]
        events += d.feed(data)
        for event in events:
            assert isinstance(event, Frame | Broken | Oversized)
            if isinstance(event, Frame):
                assert len(event.payload) <= 32 and b"\x0b" not in event.payload

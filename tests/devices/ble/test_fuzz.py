"""Seeded fuzzing: random and mutated values make the decoders succeed or raise
MalformedPayload, nothing else; whatever decodes is well formed.

The seed is printed; set RPM_FUZZ_SEED to replay a run.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import sys
from datetime import datetime
from typing import Any

import pytest

from devices.ble import DecodeResult, decode
from devices.ble.characteristics import DECODERS
from devices.ble.racp import decode_racp_request
from devices.ble.result import CANONICAL_UNITS
from devices.errors import MalformedPayload
from tests.support.paths import CONTRACT_DIR

VECTORS = json.loads((CONTRACT_DIR / "ble-vectors.json").read_text(encoding="utf-8"))
SNAKE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
ROUNDS = 40_000


def _seeds() -> dict[int, list[bytes]]:
    corpus: dict[int, list[bytes]] = {short: [] for short in DECODERS}
    for vector in VECTORS:
        if vector["characteristic_uuid"]:
            corpus[int(vector["characteristic_uuid"][4:8], 16)].append(bytes.fromhex(vector["hex"]))
    # a few more valid shapes, so mutations start from every optional field
    corpus[0x2AA7] += [bytes.fromhex("0de378000a00010402f6ff5f00"), bytes.fromhex("08000c100600596f")]
    corpus[0x2A5F].append(bytes.fromhex("1f610048006000" + "4b00" + "62004600" + "8000" + "000000" + "35f0"))
    corpus[0x2A9C].append(bytes.fromhex("ff1fd700e807010f081e0001701790017017e02e1027401f8813483ca802"))
    corpus[0x2A2B].append(bytes.fromhex("e8070305071e0f028001"))
    corpus[0x2A19].append(b"\x64")
    return corpus


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        if choice < 0.3 and buf:
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        elif choice < 0.5 and buf:
            del buf[rng.randrange(len(buf)) :]
        elif choice < 0.7:
            buf += bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif choice < 0.85 and buf:
            buf[0] = rng.randrange(256)  # flags: announce fields that are not there
        elif buf:
            buf[rng.randrange(len(buf))] = rng.choice((0x00, 0x07, 0x08, 0x7F, 0x80, 0xFF))
    return bytes(buf)


def _check(result: DecodeResult) -> None:
    json.dumps(result.fields, allow_nan=False)
    for m in result.measurements:
        assert CANONICAL_UNITS[m.metric] == m.unit
        assert isinstance(m.value, float) and math.isfinite(m.value)
        assert isinstance(m.original_value, float) and math.isfinite(m.original_value)
        assert m.measured_at is None or (isinstance(m.measured_at, datetime) and m.measured_at.tzinfo is None)
        assert all(SNAKE.fullmatch(flag) for flag in m.status)


def test_fuzz_decoders_raise_only_malformed_payload() -> None:
    seed = int(os.environ.get("RPM_FUZZ_SEED", random.randrange(2**32)))
    print(f"BLE fuzz seed {seed} (set RPM_FUZZ_SEED to reproduce)", file=sys.stderr)  # noqa: T201
    rng = random.Random(seed)
    corpus = _seeds()
    shorts = sorted(DECODERS)
    decoded = refused = 0
    for _ in range(ROUNDS):
        short = rng.choice(shorts)
        pick = rng.random()
        if pick < 0.25 or not corpus[short]:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(48)))
        elif pick < 0.9:
            data = _mutate(rng, rng.choice(corpus[short]))
        else:  # another characteristic's bytes
            other = corpus[rng.choice(shorts)]
            data = rng.choice(other) if other else b""
        racp_write = short == 0x2A52 and rng.random() < 0.5
        try:
            result = decode_racp_request(data) if racp_write else decode(short, data)
        except MalformedPayload as exc:
            refused += 1
            assert exc.reason
            assert exc.offset is None or 0 <= exc.offset <= max(len(data), 512)
            continue
        except Exception as exc:  # anything else is the bug this test looks for
            pytest.fail(f"seed {seed}: 0x{short:04X} {data.hex()} raised {exc!r}")
        decoded += 1
        _check(result)
    # both outcomes were exercised
    assert decoded > ROUNDS // 20
    assert refused > ROUNDS // 20


def test_fuzz_uuid_text_raises_only_malformed_payload() -> None:
    seed = int(os.environ.get("RPM_FUZZ_SEED", random.randrange(2**32)))
    print(f"UUID fuzz seed {seed} (set RPM_FUZZ_SEED to reproduce)", file=sys.stderr)  # noqa: T201
    rng = random.Random(seed)
    alphabet = "0123456789abcdefABCDEFx- \t\n\u00e9\u0000"
    for _ in range(5000):
        text: Any = "".join(rng.choice(alphabet) for _ in range(rng.randrange(40)))
        try:
            decode(text, b"\x06\x5a")
        except MalformedPayload:
            continue

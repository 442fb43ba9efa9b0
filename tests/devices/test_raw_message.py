"""parse_raw (one pass from bytes) against the ordinary road, decode_message + parse_message:
the same readings, rejections and errors for well-formed, hostile and random input."""

from __future__ import annotations

import json
import os
import random
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

from devices.catalogue import load_catalogue
from devices.errors import DevicesError
from devices.message import Rules, decode_message, parse_message
from devices.raw_message import _short_road, parse_raw

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
DEVICE = "F0F1F2F3F4F5"
SMALL = Rules(max_payload_bytes=2048, max_readings=3)

HR = '"metric":"heart_rate","value":72,"unit":"/min","measured_at":"2026-11-25T08:30:00Z"'
WEIGHT = '"metric":"body_weight","value":181.4,"unit":"[lb_av]","measured_at":"2026-11-25T07:02:00+01:00"'
TEMP = (
    '"metric":"body_temperature","value":98.6,"unit":"[degF]",'
    '"measured_at":"2026-11-25T03:00:00.123456-05:00"'
)


def one(
    value: str = "72",
    *,
    metric: str = '"heart_rate"',
    unit: str = '"/min"',
    at: str = '"2026-11-25T08:30:00Z"',
) -> bytes:
    """A single-reading message; each argument is the raw JSON of its field."""
    return f'{{"metric":{metric},"value":{value},"unit":{unit},"measured_at":{at}}}'.encode()


# (name, payload): each is checked with the default rules and with SMALL.
CASES: list[tuple[str, bytes]] = [
    ("single", b"{" + HR.encode() + b"}"),
    (
        "single with extras",
        b"{" + HR.encode() + b',"source":"strap","gateway_id":"hub","status":["a","b"],'
        b'"battery_level":55,"device_time":"2026-11-25T08:29:58Z","whatever":{"x":[1,2]}}',
    ),
    ("single, float value", b"{" + WEIGHT.encode() + b"}"),
    ("single, converted unit", b"{" + TEMP.encode() + b"}"),
    ("single, own device", b'{"device_id":"' + DEVICE.encode() + b'",' + HR.encode() + b"}"),
    ("single, another device", b'{"device_id":"OTHER",' + HR.encode() + b"}"),
    ("single, device null", b'{"device_id":null,' + HR.encode() + b"}"),
    ("single, device a number", b'{"device_id":5,' + HR.encode() + b"}"),
    ("batch", ('{"gateway_id":"hub","readings":[{' + HR + "},{" + WEIGHT + "},{" + TEMP + "}]}").encode()),
    (
        "batch, inherited",
        (
            '{"gateway_id":"hub","source":"s","status":["x"],"battery_level":40,'
            '"device_id":"'
            + DEVICE
            + '","readings":[{'
            + HR
            + "},{"
            + WEIGHT
            + ',"source":null,"status":[],"battery_level":3}]}'
        ).encode(),
    ),
    (
        "batch, inherited nulls",
        (
            '{"gateway_id":null,"source":null,"battery_level":null,"readings":[{'
            + HR
            + ',"gateway_id":"g"}]}'
        ).encode(),
    ),
    (
        "batch, bad inherited overridden",
        ('{"gateway_id":"' + "g" * 80 + '","readings":[{' + HR + ',"gateway_id":"ok"}]}').encode(),
    ),
    ("batch, bad inherited", ('{"gateway_id":"' + "g" * 80 + '","readings":[{' + HR + "}]}").encode()),
    ("batch, inherited battery float", ('{"battery_level":50.0,"readings":[{' + HR + "}]}").encode()),
    ("batch, inherited battery bool", ('{"battery_level":true,"readings":[{' + HR + "}]}").encode()),
    ("batch, another device", ('{"device_id":"OTHER","readings":[{' + HR + "}]}").encode()),
    ("batch, reading of another device", ('{"readings":[{"device_id":"OTHER",' + HR + "}]}").encode()),
    (
        "batch, one bad reading",
        (
            '{"readings":[{' + HR + '},{"metric":"heart_rate","value":999,"unit":"/min",'
            '"measured_at":"2026-11-25T08:30:01Z"},{' + WEIGHT + "}]}"
        ).encode(),
    ),
    ("batch, not an object inside", ('{"readings":[{' + HR + '},7,"x",null]}').encode()),
    (
        "batch, four readings",
        (
            '{"readings":['
            + ",".join(["{" + HR.replace("08:30:00", f"08:30:0{i}") + "}" for i in range(4)])
            + "]}"
        ).encode(),
    ),
    ("batch, empty", b'{"readings":[]}'),
    ("batch, not a list", b'{"readings":{"a":1}}'),
    (
        "batch, ecg inside",
        (
            '{"readings":[{' + HR + '},{"metric":"ecg","measured_at":"2026-11-25T08:30:00Z",'
            '"value":1,"unit":"mV"}]}'
        ).encode(),
    ),
    (
        "single ecg shaped like a reading",
        b'{"metric":"ecg","value":1,"unit":"mV","measured_at":"2026-11-25T08:30:00Z"}',
    ),
    ("readings only in a string", ("{" + HR + ',"source":"readings"}').encode()),
    ("escaped readings key", ("{" + HR + ',"\\u0072eadings":[{' + WEIGHT + "}]}").encode()),
    ("escape in a value", ("{" + HR + ',"source":"a\\u00e9b"}').encode()),
    ("lone surrogate escape", ("{" + HR + ',"source":"\\ud800"}').encode()),
    ("NaN ignored", ("{" + HR + ',"x":NaN}').encode()),
    ("Infinity ignored", ("{" + HR + ',"x":-Infinity}').encode()),
    ("NaN as value", one("NaN")),
    ("huge exponent ignored", ("{" + HR + ',"x":1e999}').encode()),
    (
        "huge exponent value",
        b'{"metric":"heart_rate","value":1e999,"unit":"/min","measured_at":"2026-11-25T08:30:00Z"}',
    ),
    (
        "big integer value",
        b'{"metric":"heart_rate","value":100000000000000000000001,"unit":"/min",'
        b'"measured_at":"2026-11-25T08:30:00Z"}',
    ),
    ("bool value", one("true")),
    ("string value", one('"72"')),
    ("numeric time", one("72", at="1764059400")),
    ("naive time", one("72", at='"2026-11-25T08:30:00"')),
    ("future", one("72", at='"2026-11-25T09:06:00Z"')),
    ("before 2010", one("72", at='"2000-01-01T00:00:00Z"')),
    ("unknown metric", one("1", metric='"mood"', unit='"1"')),
    ("wrong unit", one("72", unit='"kg"')),
    ("control char in text", ("{" + HR + ',"source":"a\tb"}').encode()),
    ("raw control char", b"{" + HR.encode() + b',"source":"a\x01b"}'),
    ("duplicate keys", ('{"metric":"spo2",' + HR + ',"unit":"kg"}').encode()),
    ("duplicate keys, last good", ('{"unit":"kg",' + HR + "}").encode()),
    ("status too long", ("{" + HR + ',"status":[' + ",".join(['"s"'] * 33) + "]}").encode()),
    ("status a string", ("{" + HR + ',"status":"s"}').encode()),
    ("battery 101", ("{" + HR + ',"battery_level":101}').encode()),
    ("battery float", ("{" + HR + ',"battery_level":5.0}').encode()),
    ("bom", b"\xef\xbb\xbf{" + HR.encode() + b"}"),
    ("whitespace around", b" \n\t{" + HR.encode() + b"}\r\n "),
    ("not utf-8", b"{" + HR.encode() + b',"source":"\xff"}'),
    ("overlong utf-8", b"{" + HR.encode() + b',"source":"\xc0\xaf"}'),
    ("encoded surrogate", b"{" + HR.encode() + b',"source":"\xed\xa0\x80"}'),
    ("truncated", b"{" + HR.encode()[:40]),
    ("trailing comma", b"{" + HR.encode() + b",}"),
    ("trailing data", b"{" + HR.encode() + b"} {}"),
    ("array", b"[1,2,3]"),
    ("string", b'"hello"'),
    ("null", b"null"),
    ("empty", b""),
    ("deep 150", ("{" + HR + ',"x":' + "[" * 150 + "]" * 150 + "}").encode()),
    ("deep 300", ("{" + HR + ',"x":' + "[" * 300 + "]" * 300 + "}").encode()),
    ("deep 5000", ("{" + HR + ',"x":' + "[" * 5000 + "]" * 5000 + "}").encode()),
    ("oversized for SMALL", ("{" + HR + ',"pad":"' + "p" * 3000 + '"}').encode()),
    ("oversized", ("{" + HR + ',"pad":"' + "p" * 300_000 + '"}').encode()),
]


def outcome(road: Any) -> tuple[Any, ...]:
    try:
        parsed = road()
    except DevicesError as exc:
        return ("error", type(exc).__name__, str(exc))
    return (
        "parsed",
        parsed.device_id,
        [(i, r, repr(r.value), repr(r.original_value)) for i, r in parsed.readings],
        [(r.index, r.reason, json.dumps(r.raw, default=str, sort_keys=True)) for r in parsed.rejections],
        parsed.strips,
    )


def both(raw: bytes, rules: Rules) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    catalogue = load_catalogue()
    fast = outcome(lambda: parse_raw(raw, device_id=DEVICE, now=NOW, rules=rules, catalogue=catalogue))
    slow = outcome(
        lambda: parse_message(
            decode_message(raw, rules), device_id=DEVICE, now=NOW, rules=rules, catalogue=catalogue
        )
    )
    return fast, slow


@pytest.mark.parametrize("rules", [Rules(), SMALL], ids=["default rules", "small limits"])
@pytest.mark.parametrize(("name", "raw"), CASES, ids=[name for name, _ in CASES])
def test_same_outcome_as_the_ordinary_road(name: str, raw: bytes, rules: Rules) -> None:
    fast, slow = both(raw, rules)
    assert fast == slow


@pytest.mark.parametrize(
    "name", ["single", "single with extras", "single, converted unit", "batch", "batch, inherited"]
)
def test_well_formed_messages_take_the_short_road(name: str) -> None:
    raw = dict(CASES)[name]
    assert _short_road(raw, DEVICE, NOW, Rules(), load_catalogue()) is not None


@pytest.mark.parametrize(
    "name", ["NaN ignored", "escaped readings key", "batch, one bad reading", "batch, ecg inside", "bom"]
)
def test_doubtful_messages_take_the_ordinary_road(name: str) -> None:
    raw = dict(CASES)[name]
    assert _short_road(raw, DEVICE, NOW, Rules(), load_catalogue()) is None


def _mutate(rng: random.Random, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data[pos:pos] = rng.choice(
                [
                    b"NaN",
                    b'"',
                    b",",
                    b"{",
                    b"}",
                    b"[",
                    b"]",
                    b"\\",
                    b"1e9",
                    b"-",
                    b"null",
                    b"true",
                    b" ",
                    b'"readings":',
                    b'"status":["x"]',
                    b'"value":',
                    b'"battery_level":7,',
                    b"\xff",
                    b"0",
                ]
            )
        elif op == 2 and data:
            del data[pos : pos + rng.randint(1, 8)]
        elif op == 3:
            data = data[:pos]
        else:
            digits = [i for i, b in enumerate(data) if 0x30 <= b <= 0x39]
            if digits:
                data[rng.choice(digits)] = rng.randrange(0x30, 0x3A)
    return bytes(data)


def test_random_mutations_agree() -> None:
    seed = int(os.environ.get("RPM_FUZZ_SEED", random.randrange(2**32)))
    print(f"fuzz seed {seed} (set RPM_FUZZ_SEED to reproduce)", file=sys.stderr)  # noqa: T201
    rng = random.Random(seed)
    bases = [raw for _, raw in CASES if len(raw) < 2000]
    for _ in range(3000):
        raw = _mutate(rng, rng.choice(bases))
        rules = rng.choice([Rules(), SMALL])
        fast, slow = both(raw, rules)
        assert fast == slow, raw

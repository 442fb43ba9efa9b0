"""Pure parsing of reading messages: the MQTT payload contract."""

from __future__ import annotations

import json
import os
import random
import sys
from datetime import UTC, datetime, timedelta

import pytest

from devices.errors import MalformedPayload
from devices.message import Rejection, Rules, decode_json, parse_message
from devices.models import Reading

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)

CONTRACT_EXAMPLE = b"""{
  "gateway_id": "home-hub-17",
  "readings": [
    {"metric": "heart_rate", "value": 72, "unit": "/min", "measured_at": "2026-11-25T08:30:00Z"},
    {"metric": "systolic_bp", "value": 128, "unit": "mm[Hg]", "measured_at": "2026-11-25T08:31:10Z"},
    {"metric": "diastolic_bp", "value": 84, "unit": "mm[Hg]", "measured_at": "2026-11-25T08:31:10Z"},
    {"metric": "body_weight", "value": 181.4, "unit": "[lb_av]", "measured_at": "2026-11-25T07:02:00+01:00"}
  ]
}"""


def test_contract_example_parses_whole() -> None:
    parsed = parse_message(decode_json(CONTRACT_EXAMPLE), device_id="F0F1F2F3F4F5", now=NOW)
    assert parsed.rejections == []
    first = parsed.readings[0][1]
    assert first == Reading(
        device_id="F0F1F2F3F4F5",
        metric="heart_rate",
        value=72.0,
        unit="/min",
        measured_at=datetime(2026, 11, 25, 8, 30, tzinfo=UTC),
        original_value=72.0,
        original_unit="/min",
        gateway_id="home-hub-17",
    )
    weight = parsed.readings[3][1]
    assert weight.measured_at == datetime(2026, 11, 25, 6, 2, tzinfo=UTC)
    assert weight.unit == "kg" and weight.original_unit == "[lb_av]" and weight.original_value == 181.4
    assert weight.value == pytest.approx(82.2817, abs=1e-4)


def test_single_reading_object_with_status_and_source() -> None:
    raw = {
        "metric": "systolic_bp",
        "value": 140,
        "unit": "mm[Hg]",
        "measured_at": "2026-11-25T08:59:00Z",
        "status": ["irregular_pulse"],
        "source": "ble",
        "device_id": "D1",
        "extra": {"ignored": 1},
    }
    [(index, reading)] = parse_message(raw, device_id="D1", now=NOW).readings
    assert index == 0 and reading.status == ("irregular_pulse",) and reading.source == "ble"


def test_message_level_fields_are_inherited_but_readings_win() -> None:
    obj = {
        "source": "mqtt",
        "status": ["body_movement"],
        "readings": [
            {"metric": "heart_rate", "value": 70, "unit": "/min", "measured_at": "2026-11-25T08:00:00Z"},
            {
                "metric": "heart_rate",
                "value": 71,
                "unit": "/min",
                "measured_at": "2026-11-25T08:01:00Z",
                "status": [],
            },
        ],
    }
    readings = [r for _, r in parse_message(obj, device_id="D", now=NOW).readings]
    assert [r.status for r in readings] == [("body_movement",), ()]
    assert {r.source for r in readings} == {"mqtt"}


def test_time_rules() -> None:
    def one(at: str) -> list[Rejection]:
        obj = {"metric": "heart_rate", "value": 70, "unit": "/min", "measured_at": at}
        return parse_message(obj, device_id="D", now=NOW).rejections

    assert one((NOW + timedelta(minutes=5)).isoformat()) == []  # at the tolerance edge
    assert "future" in one((NOW + timedelta(minutes=5, seconds=1)).isoformat())[0].reason
    assert one("2026-11-20T08:00:00-05:00") == []  # late, buffered readings are fine
    assert "timezone" in one("2026-11-25T08:00:00")[0].reason
    assert "before 2010" in one("1970-01-01T00:00:00Z")[0].reason
    assert "clock unset" in one("2000-01-01T00:00:01Z")[0].reason
    assert one("not a time")
    rules = Rules(future_tolerance=timedelta(0))
    obj = {"metric": "heart_rate", "value": 70, "unit": "/min", "measured_at": "2026-11-25T09:00:01Z"}
    assert parse_message(obj, device_id="D", now=NOW, rules=rules).rejections


def test_plausibility_edges_are_inclusive() -> None:
    def ok(value: float) -> bool:
        obj = {"metric": "spo2", "value": value, "unit": "%", "measured_at": "2026-11-25T08:00:00Z"}
        return not parse_message(obj, device_id="D", now=NOW).rejections

    assert ok(50) and ok(100) and not ok(49.999) and not ok(100.001)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"\xc3\x28", "not UTF-8"),
        (b"[]", "JSON object"),
        (b"null", "JSON object"),
        (b'{"readings": 5}', "must be an array"),
        (b'{"readings": []}', "1 to 1000"),
        (b'{"device_id": "OTHER", "metric": "heart_rate"}', "does not match"),
        (b'{"value": NaN}', "NaN"),
        (b'{"value": Infinity}', "Infinity"),
        (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
    ],
)
def test_malformed_messages(raw: bytes, fragment: str) -> None:
    with pytest.raises(MalformedPayload, match=fragment.replace("[", r"\[")):
        parse_message(decode_json(raw), device_id="D", now=NOW)


def test_oversized_and_too_many() -> None:
    with pytest.raises(MalformedPayload, match="over the 262144-byte limit"):
        decode_json(b" " * (256 * 1024 + 1))
    many = {
        "readings": [
            {"metric": "steps", "value": 1, "unit": "{steps}", "measured_at": "2026-11-25T08:00:00Z"}
        ]
        * 1001
    }
    with pytest.raises(MalformedPayload, match="1 to 1000"):
        parse_message(many, device_id="D", now=NOW)


def test_bad_readings_do_not_hide_good_neighbours() -> None:
    good = {"metric": "heart_rate", "value": 70, "unit": "/min", "measured_at": "2026-11-25T08:00:00Z"}
    obj = {"readings": [good, 5, {"metric": "heart_rate"}, {**good, "value": "x" * 10_000}, good]}
    parsed = parse_message(obj, device_id="D", now=NOW)
    assert [i for i, _ in parsed.readings] == [0, 4]
    assert [r.index for r in parsed.rejections] == [1, 2, 3]
    assert all(len(r.reason) < 500 for r in parsed.rejections)


def _random_json(rng: random.Random, depth: int = 0) -> object:
    choice = rng.randrange(9 if depth < 4 else 6)
    if choice == 0:
        return rng.choice([None, True, False])
    if choice == 1:
        return rng.choice([0, -1, 1e308, 72, 3.5, 2**70])
    if choice == 2:
        return "".join(chr(rng.randrange(0x20, 0x2FFF)) for _ in range(rng.randrange(12)))
    if choice == 3:
        return rng.choice(["heart_rate", "/min", "2026-11-25T08:00:00Z", "spo2", "%", "D"])
    if choice in (4, 5):
        return rng.choice([{}, []])
    if choice == 6:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["metric", "value", "unit", "measured_at", "readings", "device_id", "status", "x"]
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randrange(6))}


def test_fuzz_only_documented_errors() -> None:
    seed = int(os.environ.get("RPM_FUZZ_SEED", random.randrange(2**32)))
    print(f"fuzz seed {seed} (set RPM_FUZZ_SEED to reproduce)", file=sys.stderr)  # noqa: T201
    rng = random.Random(seed)
    for _ in range(3000):
        if rng.random() < 0.3:
            raw = bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
        else:
            raw = json.dumps(_random_json(rng)).encode()
        try:
            parsed = parse_message(decode_json(raw), device_id="D", now=NOW)
        except MalformedPayload:
            continue
        for _, reading in parsed.readings:
            assert reading.measured_at.tzinfo is not None


def test_battery_level_travels_with_readings_and_is_range_checked() -> None:
    good = {"metric": "heart_rate", "value": 70, "unit": "/min", "measured_at": "2026-11-25T08:00:00Z"}
    parsed = parse_message(
        {
            "battery_level": 12,
            "readings": [good, {**good, "battery_level": 80, "measured_at": "2026-11-25T08:01:00Z"}],
        },
        device_id="D",
        now=NOW,
    )
    assert [r.battery_level for _, r in parsed.readings] == [12, 80]
    for bad in (101, -1, "50", 12.5, True):
        rejected = parse_message({**good, "battery_level": bad}, device_id="D", now=NOW).rejections
        assert rejected and "battery_level" in rejected[0].reason


@pytest.mark.parametrize("field", ["gateway_id", "source", "unit"])
@pytest.mark.parametrize("text", ["a\x00b", "line\nbreak", "\x7f", "tab\there"])
def test_control_characters_in_text_fields_are_refused(field: str, text: str) -> None:
    good = {"metric": "heart_rate", "value": 70, "unit": "/min", "measured_at": "2026-11-25T08:00:00Z"}
    rejected = parse_message({**good, field: text}, device_id="D", now=NOW).rejections
    assert rejected and field in rejected[0].reason


def test_device_id_with_trailing_newline_is_not_an_id() -> None:
    with pytest.raises(MalformedPayload, match="device_id"):
        parse_message({"device_id": "D1\n", "readings": [{}]}, device_id=None, now=NOW)

"""Poison messages interleaved with valid ones: every valid reading stored, every bad message
dead-lettered once with a reason, acknowledged, counted, and the consumer keeps running."""

from __future__ import annotations

import json
import os
import random
import sys
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

from psycopg_pool import ConnectionPool

from devices.mqtt.publisher import Publisher
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_ingest import (
    count_readings,
    dead_letters,
    measured_at,
    metric,
    reading,
    register,
    topic,
)
from tests.support.service import RunningService
from tests.support.waiting import wait_until


def iso(i: int, shift: timedelta = timedelta(0)) -> str:
    return (measured_at(i) + shift).isoformat()


def garbage(rng: random.Random, i: int, prefix: str) -> tuple[str, bytes]:
    """One bad message (topic, payload) of kind ``i % 16``; each yields exactly one dead letter."""
    ok = f"{prefix}/OX-P/readings"
    hr = {"metric": "heart_rate", "value": 70, "unit": "/min", "measured_at": iso(100_000 + i)}
    kind = i % 16
    if kind == 0:
        return ok, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2000)))
    if kind == 1:
        depth = rng.choice([1000, 50_000, 100_000])
        return ok, b"[" * depth + b"]" * depth
    if kind == 2:
        return ok, json.dumps({**hr, "unit": "x" * 1_000_000}).encode()  # 1 MB string
    if kind == 3:
        return ok, json.dumps({**hr, "value": "72"}).encode()  # wrong type
    if kind == 4:
        return ok, json.dumps({**hr, "measured_at": 1764000000}).encode()  # epoch number
    if kind == 5:
        return ok, rng.choice([b"null", b"[]", b'"text"', b"true", b"42", b"{}", b'{"readings": []}',
                               b'{"readings": {}}', b""])
    if kind == 6:
        return ok, json.dumps({**hr, "value": 900}).encode()  # implausible
    if kind == 7:
        return ok, json.dumps({**hr, "measured_at": iso(i, timedelta(days=1000))}).encode()  # future
    if kind == 8:
        return f"{prefix}/UNKNOWN-{i}/readings", json.dumps(hr).encode()  # unregistered device
    if kind == 9:
        bad_id = rng.choice(["x" * 65, "bad id", "caf\u00e9", "a*b", "", "OX-P.", "OX P"])
        return f"{prefix}/{bad_id}/readings", json.dumps(hr).encode()  # topic names no valid id
    if kind == 10:
        return ok, b'{"metric": "heart_rate", "value": NaN, "unit": "/min", "measured_at": "%s"}' % (
            iso(i).encode()
        )
    if kind == 11:
        return ok, json.dumps({**hr, "device_id": "SOMEONE-ELSE"}).encode()
    if kind == 12:
        return ok, json.dumps({**hr, "metric": "mood"}).encode()
    if kind == 13:
        return ok, json.dumps({**hr, "unit": "kg"}).encode()  # not convertible to /min
    if kind == 14:
        return ok, b'{"metric": "heart_rate", "value": 7' + b"0" * rng.randrange(0, 5)  # truncated
    return ok, json.dumps({**hr, "value": 1e308 * 10 if rng.random() < 0.5 else -1}).encode()


def test_garbage_interleaved_with_valid_readings(
    db_url: str,
    pool: ConnectionPool,
    topic_prefix: str,
    own_broker: Mosquitto,
    make_consumer: Callable[..., RunningService],
    publish: Callable[..., Publisher],
) -> None:
    seed = int(os.environ.get("RPM_FUZZ_SEED", random.randrange(2**32)))
    print(f"MQTT garbage seed {seed} (set RPM_FUZZ_SEED to reproduce)", file=sys.stderr)  # noqa: T201
    rng = random.Random(seed)
    register(pool, ["OX-P"])
    # Every bad message kept in full: most of them come from one device, far over the dead-letter
    # limit per window (that bound has its own test, test_dead_letter_flood.py).
    svc = make_consumer(mqtt_url=own_broker.url, dead_letter_limit=0)
    pub = publish(own_broker.url)
    bad_topics: list[str] = []
    for i in range(1000):
        pub.publish(topic(topic_prefix, "OX-P"), reading(i))
        t, payload = garbage(rng, i, topic_prefix)
        bad_topics.append(t)
        pub.publish(t, payload)
    # A message with several readings: each judged on its own.
    mixed = {
        "readings": [
            json.loads(reading(5000)),
            {"metric": "heart_rate", "value": 5000, "unit": "/min", "measured_at": iso(5001)},
            json.loads(reading(5002)),
        ]
    }
    pub.publish(topic(topic_prefix, "OX-P"), json.dumps(mixed).encode())
    assert pub.flush(30)

    wait_until(lambda: len(dead_letters(db_url)) >= 1001, 60, "1001 dead letters")
    wait_until(lambda: count_readings(db_url) == 1002, 30, "1002 valid readings")
    letters = dead_letters(db_url)
    assert len(letters) == 1001
    assert all(letter["reason"] and letter["source"] == "mqtt" for letter in letters)
    assert all(letter["topic"] for letter in letters)
    assert Counter(letter["topic"] for letter in letters) == Counter(
        [*bad_topics, topic(topic_prefix, "OX-P")]
    )
    reasons = " | ".join(letter["reason"] for letter in letters)
    for expected in ("not UTF-8", "nested too deeply", "over the", "not registered", "topic device id",
                     "NaN", "does not match", "plausible"):
        assert expected in reasons, expected
    oversized = [bytes(letter["raw"]) for letter in letters if "over the" in letter["reason"]]
    assert oversized and all(len(raw) > 1_000_000 for raw in oversized), "raw bytes are kept"

    # Everything was acknowledged, counted, and the consumer is still consuming.
    wait_until(lambda: metric(svc, "rpm_mqtt_messages_acked_total") == 2001, 10, "all messages acked")
    assert metric(svc, "rpm_messages_dead_lettered_total", source="mqtt") + metric(
        svc, "rpm_readings_rejected_total", source="mqtt"
    ) == 1001
    pub.publish(topic(topic_prefix, "OX-P"), reading(9999))
    wait_until(lambda: count_readings(db_url) == 1003, 10, "a reading after the garbage")
    assert svc.services.readiness["mqtt"]()[0]


def test_reading_from_an_unregistered_device_is_replayed_after_registration(
    db_url: str,
    pool: ConnectionPool,
    topic_prefix: str,
    make_consumer: Callable[..., RunningService],
    publish: Callable[..., Publisher],
) -> None:
    svc = make_consumer()
    pub = publish()
    pub.publish(topic(topic_prefix, "NEW-1"), reading(1))
    wait_until(lambda: len(dead_letters(db_url)) == 1, 10, "the dead letter")
    admin = svc.client(svc.token("admin"))
    [letter] = admin.get("/v1/dead-letters").json()["dead_letters"]
    assert letter["topic"] == topic(topic_prefix, "NEW-1") and "not registered" in letter["reason"]
    assert json.loads(letter["raw"])["metric"] == "heart_rate"
    register(pool, ["NEW-1"])
    replay = admin.post(f"/v1/dead-letters/{letter['id']}/replay")
    assert replay.status_code == 200 and replay.json()["accepted"] == 1
    assert count_readings(db_url, "NEW-1") == 1
    pub.publish(topic(topic_prefix, "NEW-1"), reading(1))  # the device sends it again: a duplicate
    wait_until(lambda: metric(svc, "rpm_readings_duplicate_total", source="mqtt") == 1, 10, "duplicate")
    assert count_readings(db_url, "NEW-1") == 1

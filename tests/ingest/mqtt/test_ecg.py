"""ECG strips over MQTT: stored through the consumer like any reading; the larger size limit is
for messages holding an ECG reading only; bad strips and a 20 MB message are dead-lettered with
their reasons while the messages around them are stored."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable

import psycopg
from psycopg_pool import ConnectionPool

from devices.ecg import LEAD_NAMES
from devices.errors import PublishError
from devices.mqtt.publisher import Publisher
from tests.support.ecg import dead_letter_rows, register_cardiac, stored_strips, wire_strip
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_ingest import count_readings, metric, reading, register, topic
from tests.support.service import RunningService
from tests.support.waiting import wait_until


def strips(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        return len(stored_strips(conn))


def letters(db_url: str) -> list[tuple[str, int | None, str]]:
    with psycopg.connect(db_url) as conn:
        return dead_letter_rows(conn)


def test_strips_good_bad_and_oversized_over_mqtt(
    db_url: str,
    pool: ConnectionPool,
    topic_prefix: str,
    make_consumer: Callable[..., RunningService],
    publish: Callable[..., Publisher],
) -> None:
    with pool.connection() as conn:
        register_cardiac(conn, "PATCH-1")
    register(pool, ["OX-E"], mrn="MRN-OX-E")
    svc = make_consumer()
    pub = publish()
    ecg_topic = topic(topic_prefix, "PATCH-1")
    six_lead = wire_strip("PATCH-1", 10, leads=LEAD_NAMES[:6], rate=500, seconds=60)
    big = json.dumps(six_lead).encode()
    assert 256 * 1024 < len(big) < 4 * 1024 * 1024
    pub.publish(ecg_topic, big)  # 1: a whole 60 s six-lead strip, over the ordinary limit
    bad = wire_strip("PATCH-1", 9, seconds=1)
    bad["leads"] = {"I": [1, 2], "II": [1]}
    pub.publish(ecg_topic, json.dumps(bad).encode())  # 2: unequal leads
    huge = wire_strip("PATCH-1", 8, seconds=1)
    huge["leads"]["I"] = [1000] * (20 * 1024 * 1024 // 5)
    pub.publish(ecg_topic, json.dumps(huge).encode(), timeout_s=60)  # 3: a 20 MB message
    pad = {"readings": [json.loads(reading(1))], "pad": " " * (300 * 1024)}
    pub.publish(topic(topic_prefix, "OX-E"), json.dumps(pad).encode())  # 4: large, no ECG
    mixed = {"readings": [wire_strip("PATCH-1", 7, seconds=5), {**wire_strip("PATCH-1", 6), "unit": "V"}]}
    pub.publish(ecg_topic, json.dumps(mixed).encode())  # 5: one good strip, one bad
    pub.publish(ecg_topic, big)  # 6: the first again: a duplicate
    nan = json.dumps(wire_strip("PATCH-1", 4, seconds=1)).replace("[", "[NaN, ", 1)  # leads: {"I": [NaN, ..
    pub.publish(ecg_topic, nan.encode())  # 7: NaN in a lead
    pub.publish(topic(topic_prefix, "OX-E"), reading(2))  # 8: an ordinary reading after it all
    assert pub.flush(60)

    wait_until(lambda: count_readings(db_url, "OX-E") == 1, 60, "the reading after the strips")
    wait_until(lambda: len(letters(db_url)) == 5, 30, "five dead letters")
    assert strips(db_url) == 2
    reasons = [reason for _, _, reason in letters(db_url)]
    assert "unequal lengths" in reasons[0]
    assert "over the 4194304-byte limit of a message holding an ECG strip" in reasons[1]
    assert "only a message holding an ECG reading may be up to 4194304 bytes" in reasons[2]
    assert "ECG unit 'V'" in reasons[3]
    assert "NaN" in reasons[4]
    with psycopg.connect(db_url) as conn:
        [(_, _, leads, count), (_, _, _, five_s)] = stored_strips(conn)
    assert (leads, count, five_s) == (list(LEAD_NAMES[:6]), 30_000, 1500)
    wait_until(lambda: metric(svc, "rpm_mqtt_messages_acked_total") == 8, 10, "all eight acked")
    assert svc.services.readiness["mqtt"]()[0]


def test_the_shipped_broker_passes_an_ecg_message_and_refuses_20_mb(
    db_url: str,
    pool: ConnectionPool,
    topic_prefix: str,
    own_broker: Mosquitto,
    make_consumer: Callable[..., RunningService],
    publish: Callable[..., Publisher],
) -> None:
    with pool.connection() as conn:
        register_cardiac(conn, "PATCH-2")
    make_consumer(mqtt_url=own_broker.url)
    pub = publish(own_broker.url)
    strip = wire_strip("PATCH-2", 10, leads=LEAD_NAMES[:6], rate=500, seconds=60)
    pub.publish(topic(topic_prefix, "PATCH-2"), json.dumps(strip).encode())
    assert pub.flush(30)
    wait_until(lambda: strips(db_url) == 1, 30, "the strip through the shipped broker config")
    # 20 MB: the broker refuses the packet and drops the publisher; nothing reaches the service
    other = publish(own_broker.url)
    huge = wire_strip("PATCH-2", 8, seconds=1)
    huge["leads"]["I"] = [1000] * (20 * 1024 * 1024 // 5)
    with contextlib.suppress(PublishError):  # the broker closes the connection
        other.publish(topic(topic_prefix, "PATCH-2"), json.dumps(huge).encode(), timeout_s=5)
        other.flush(5)
    pub.publish(topic(topic_prefix, "PATCH-2"), json.dumps(wire_strip("PATCH-2", 5)).encode())
    assert pub.flush(30)
    wait_until(lambda: strips(db_url) == 2, 30, "a strip after the refused 20 MB message")
    assert letters(db_url) == []

"""Acknowledge after commit, and repeats absorbed by the store: the same reading published twice,
and a message redelivered because its acknowledgement was lost after the commit (as in a crash)."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from psycopg_pool import ConnectionPool

from devices.mqtt.publisher import Publisher
from tests.support.mqtt_ingest import CommitChecker, count_readings, metric, reading, register, topic
from tests.support.mqtt_tap import MqttTap
from tests.support.service import RunningService
from tests.support.tcpproxy import TcpProxy
from tests.support.waiting import wait_until


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_every_acknowledgement_follows_its_commit(
    protocol: str,
    db_url: str,
    pool: ConnectionPool,
    topic_prefix: str,
    mqtt_url: str,
    make_consumer: Callable[..., RunningService],
    publish: Callable[..., Publisher],
) -> None:
    """The tap holds each PUBACK on the wire and checks, in the database, that its reading is
    already committed before letting it reach the broker."""
    register(pool, ["OX-A"])
    checker = CommitChecker(db_url)
    tap = MqttTap(on_ack=checker)
    broker = urlsplit(mqtt_url)
    with TcpProxy(broker.hostname or "127.0.0.1", broker.port or 1883, tap=tap) as proxy:
        svc = make_consumer(mqtt_url=f"mqtt://127.0.0.1:{proxy.port}", mqtt_protocol=protocol,
                            batch_max_messages=20)
        pub = publish(protocol=protocol)
        for i in range(300):
            pub.publish(topic(topic_prefix, "OX-A"), reading(i))
        assert pub.flush(10)
        wait_until(lambda: len(tap.acks) == 300, 30, "300 acknowledgements on the wire")
    assert checker.violations == []
    assert count_readings(db_url) == 300
    assert metric(svc, "rpm_mqtt_messages_acked_total") == 300


def test_same_reading_published_twice_is_stored_once(
    db_url: str,
    pool: ConnectionPool,
    topic_prefix: str,
    make_consumer: Callable[..., RunningService],
    publish: Callable[..., Publisher],
) -> None:
    register(pool, ["OX-D"])
    svc = make_consumer()
    pub = publish()
    t = topic(topic_prefix, "OX-D")
    pub.publish(t, reading(1))
    pub.publish(t, reading(1))  # same key, possibly in the same batch
    assert pub.flush(10)
    wait_until(lambda: metric(svc, "rpm_mqtt_messages_acked_total") == 2, what="both acked")
    pub.publish(t, reading(1, status=["body_movement"]))  # same key later, other details
    batch = {"readings": [json.loads(reading(i)) for i in range(1, 40)]}
    pub.publish(t, json.dumps(batch).encode())
    pub.publish(t, json.dumps(batch).encode())
    assert pub.flush(10)
    wait_until(lambda: metric(svc, "rpm_mqtt_messages_acked_total") == 5, what="all acked")
    assert count_readings(db_url) == 39
    assert metric(svc, "rpm_readings_stored_total", source="mqtt") == 39
    assert metric(svc, "rpm_readings_duplicate_total", source="mqtt") == 1 + 1 + 1 + 39


def test_redelivery_after_a_lost_acknowledgement_is_absorbed(
    db_url: str,
    pool: ConnectionPool,
    topic_prefix: str,
    mqtt_url: str,
    make_consumer: Callable[..., RunningService],
    publish: Callable[..., Publisher],
) -> None:
    """The first PUBACK is swallowed and the link cut, as if the service died between commit and
    acknowledgement: the broker redelivers on the persistent session, the store absorbs it."""
    register(pool, ["OX-R"])
    dropped: list[bytes] = []

    def lose_first_ack(_topic: str, payload: bytes) -> bool:
        if not dropped:
            dropped.append(payload)
            return False
        return True

    tap = MqttTap(on_ack=lose_first_ack)
    broker = urlsplit(mqtt_url)
    with TcpProxy(broker.hostname or "127.0.0.1", broker.port or 1883, tap=tap) as proxy:
        svc = make_consumer(mqtt_url=f"mqtt://127.0.0.1:{proxy.port}", batch_max_messages=1)
        pub = publish()
        pub.publish(topic(topic_prefix, "OX-R"), reading(7))
        assert pub.flush(10)
        wait_until(lambda: any(a.payload == dropped[0] for a in tap.acks), 30,
                   "the redelivered message acknowledged")
        assert proxy.connections >= 2
    assert count_readings(db_url) == 1
    assert metric(svc, "rpm_readings_stored_total", source="mqtt") == 1
    assert metric(svc, "rpm_readings_duplicate_total", source="mqtt") == 1

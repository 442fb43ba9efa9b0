"""The consumer against a real Mosquitto and a real PostgreSQL: store, acknowledge, sessions."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from psycopg_pool import ConnectionPool

from ingest.mqtt.publisher import Publisher
from tests.ingest.mqtt.conftest import count_readings, reading, register, topic, wait_until
from tests.support.service import RunningService


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_readings_are_stored_and_acknowledged(
    protocol: str,
    db_url: str,
    pool: ConnectionPool,
    topic_prefix: str,
    make_consumer: Callable[..., RunningService],
    publish: Callable[..., Publisher],
) -> None:
    register(pool, ["OX-1"])
    svc = make_consumer(mqtt_protocol=protocol)
    pub = publish(protocol=protocol)
    for i in range(200):
        pub.publish(topic(topic_prefix, "OX-1"), reading(i))
    assert pub.flush(10)
    wait_until(lambda: count_readings(db_url) == 200, what="200 readings stored")
    metrics = svc.services.metrics
    wait_until(lambda: metrics.mqtt_acked._value.get() == 200, what="200 acks")

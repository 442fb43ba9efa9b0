"""The consumer against a real Mosquitto and a real PostgreSQL: store, acknowledge, sessions."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from psycopg_pool import ConnectionPool

from devices.mqtt.publisher import Publisher
from tests.support.mqtt_ingest import count_readings, metric, reading, register, topic
from tests.support.service import RunningService
from tests.support.waiting import wait_until


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
    wait_until(lambda: metric(svc, "rpm_mqtt_messages_acked_total") == 200, what="200 acks")
    assert metric(svc, "rpm_readings_stored_total", source="mqtt") == 200
    exposed = httpx.get(f"{svc.base_url}/metrics").text
    assert "rpm_mqtt_messages_acked_total 200.0" in exposed
    assert 'rpm_readings_stored_total{source="mqtt"} 200.0' in exposed
    assert "rpm_mqtt_connected 1.0" in exposed and "rpm_mqtt_inflight_messages 0.0" in exposed

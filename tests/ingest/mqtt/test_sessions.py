"""Persistent sessions, shared subscriptions and readiness against a Mosquitto of the test's own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest
from psycopg_pool import ConnectionPool

from devices.mqtt.publisher import Publisher
from ingest.mqtt.consumer import mqtt_component
from ingest.settings import Settings
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_ingest import (
    consumer_of,
    count_readings,
    metric,
    reading,
    register,
    topic,
    wait_ready,
)
from tests.support.service import RunningService, running_service
from tests.support.waiting import wait_until


@contextmanager
def consumer(settings: Settings, **overrides: object) -> Iterator[RunningService]:
    with running_service(settings.model_copy(update=overrides), factories=[mqtt_component]) as svc:
        wait_ready(svc)
        yield svc


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_readings_published_while_the_service_is_down_arrive_when_it_is_back(
    protocol: str, settings: Settings, db_url: str, pool: ConnectionPool, topic_prefix: str,
    own_broker: Mosquitto, publish: Callable[..., Publisher],
) -> None:
    register(pool, ["OX-S"])
    common = {"mqtt_url": own_broker.url, "mqtt_protocol": protocol}
    with consumer(settings, **common):
        pass  # the first connection creates the session and its subscription
    pub = publish(own_broker.url)
    for i in range(100):
        pub.publish(topic(topic_prefix, "OX-S"), reading(i))
    assert pub.flush(10)
    assert count_readings(db_url) == 0
    with consumer(settings, **common) as svc:
        wait_until(lambda: count_readings(db_url) == 100, 20, "the readings queued by the broker")
        assert metric(svc, "rpm_mqtt_sessions_lost_total") == 0


def test_shared_subscription_splits_the_load_and_stores_each_reading_once(
    settings: Settings, db_url: str, pool: ConnectionPool, topic_prefix: str,
    own_broker: Mosquitto, publish: Callable[..., Publisher],
) -> None:
    devices = [f"OX-G{i}" for i in range(4)]
    register(pool, devices)
    shared = {"mqtt_url": own_broker.url, "mqtt_shared_group": "ingest"}
    with consumer(settings, mqtt_client_id="worker-a", **shared) as a, \
            consumer(settings, mqtt_client_id="worker-b", **shared) as b:
        assert consumer_of(a).session.topic_filter == f"$share/ingest/{topic_prefix}/+/readings"
        pub = publish(own_broker.url)
        for i in range(400):
            pub.publish(topic(topic_prefix, devices[i % 4]), reading(i))
        assert pub.flush(10)
        wait_until(lambda: count_readings(db_url) == 400, 20, "400 readings")
        got_a = metric(a, "rpm_mqtt_messages_received_total")
        got_b = metric(b, "rpm_mqtt_messages_received_total")
        assert got_a + got_b == 400 and got_a > 0 and got_b > 0


def test_readiness_follows_the_broker(
    db_url: str, pool: ConnectionPool, topic_prefix: str, own_broker: Mosquitto,
    make_consumer: Callable[..., RunningService], publish: Callable[..., Publisher],
) -> None:
    register(pool, ["OX-H"])
    svc = make_consumer(mqtt_url=own_broker.url)
    assert httpx.get(f"{svc.base_url}/readyz").status_code == 200
    own_broker.stop()

    def not_ready() -> bool:
        r = httpx.get(f"{svc.base_url}/readyz")
        return r.status_code == 503 and r.json()["checks"]["mqtt"]["ok"] is False

    wait_until(not_ready, 10, "/readyz to report the broker down")
    assert httpx.get(f"{svc.base_url}/readyz").json()["checks"]["database"]["ok"] is True
    own_broker.start()
    wait_until(lambda: httpx.get(f"{svc.base_url}/readyz").status_code == 200, 30, "reconnected")
    pub = publish(own_broker.url)
    pub.publish(topic(topic_prefix, "OX-H"), reading(1))
    wait_until(lambda: count_readings(db_url) == 1, 10, "a reading after the reconnect")
    assert metric(svc, "rpm_mqtt_connects_total") == 2
    assert metric(svc, "rpm_mqtt_connected") == 1


def test_consumer_started_before_its_broker_connects_when_it_appears(
    db_url: str, pool: ConnectionPool, topic_prefix: str, tmp_path_factory: pytest.TempPathFactory,
    make_consumer: Callable[..., RunningService], publish: Callable[..., Publisher],
) -> None:
    register(pool, ["OX-L"])
    broker = Mosquitto(tmp_path_factory.mktemp("late"), service_config=True)
    svc = make_consumer(mqtt_url=broker.url, wait=False)
    ok, detail = svc.services.readiness["mqtt"]()
    assert not ok and detail
    with broker:
        wait_ready(svc, 30)
        pub = publish(broker.url)
        pub.publish(topic(topic_prefix, "OX-L"), reading(1))
        wait_until(lambda: count_readings(db_url) == 1, 10, "the reading")

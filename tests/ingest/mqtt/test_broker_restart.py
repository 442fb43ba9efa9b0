"""The broker (a Mosquitto of the test's own, with persistence) restarts in the middle of a burst:
nothing lost, nothing doubled, and no acknowledgement ever precedes its commit."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from psycopg_pool import ConnectionPool

from devices.mqtt.publisher import Publisher
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_ingest import (
    CommitChecker,
    count_readings,
    dead_letters,
    metric,
    reading,
    register,
    topic,
)
from tests.support.mqtt_tap import MqttTap
from tests.support.service import RunningService
from tests.support.tcpproxy import TcpProxy
from tests.support.waiting import wait_until

N = 3000
RATE = 1000  # messages per second: the restart lands in the middle of the burst


def test_broker_restart_mid_burst(
    db_url: str,
    pool: ConnectionPool,
    topic_prefix: str,
    own_broker: Mosquitto,
    make_consumer: Callable[..., RunningService],
    publish: Callable[..., Publisher],
) -> None:
    devices = [f"OX-B{i}" for i in range(5)]
    register(pool, devices)
    checker = CommitChecker(db_url)
    tap = MqttTap(on_ack=checker)
    with TcpProxy("127.0.0.1", own_broker.port, tap=tap) as proxy:
        svc = make_consumer(mqtt_url=f"mqtt://127.0.0.1:{proxy.port}", batch_max_messages=100)
        pub = publish(own_broker.url, max_pending=200)

        def burst() -> None:
            started = time.monotonic()
            for i in range(N):
                pub.publish(topic(topic_prefix, devices[i % 5]), reading(i), timeout_s=60)
                ahead = i / RATE - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)

        publisher = threading.Thread(target=burst)
        publisher.start()
        wait_until(lambda: count_readings(db_url) >= N // 4, 30, "a quarter of the burst stored")
        assert count_readings(db_url) < N // 2
        own_broker.restart()  # SIGTERM (Mosquitto saves its sessions and queues), then start again
        publisher.join(60)
        assert not publisher.is_alive()
        assert pub.flush(30), "the publisher's unacknowledged messages are sent again"
        wait_until(lambda: count_readings(db_url) == N, 60, f"all {N} readings")
        wait_until(lambda: metric(svc, "rpm_mqtt_connects_total") >= 2, 30, "the consumer reconnected")
        wait_until(lambda: svc.services.readiness["mqtt"]()[0], 30, "the consumer ready again")

    assert count_readings(db_url) == N  # the primary key makes "more than once" impossible
    assert checker.violations == []
    assert dead_letters(db_url) == []
    assert metric(svc, "rpm_mqtt_connects_total") >= 2

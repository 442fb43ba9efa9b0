"""PostgreSQL unreachable for ~10 s mid-burst (a real TCP proxy cut between service and database):
nothing acknowledged while it is away, nothing lost or dead-lettered after, recovery on its own."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
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

N = 2000
RECEIVE_MAXIMUM = 100


def _via(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username or 'postgres'}@127.0.0.1:{port}"))


@pytest.fixture
def db_proxy(db_url: str) -> Iterator[TcpProxy]:
    parts = urlsplit(db_url)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        yield proxy


def test_database_outage_mid_burst(
    db_url: str,
    pool: ConnectionPool,
    topic_prefix: str,
    own_broker: Mosquitto,
    db_proxy: TcpProxy,
    make_consumer: Callable[..., RunningService],
    publish: Callable[..., Publisher],
) -> None:
    register(pool, ["OX-DB"])
    checker = CommitChecker(db_url)
    tap = MqttTap(on_ack=checker)
    # A broker of the test's own: the shared one keeps Mosquitto's default max_queued_messages
    # (1000), which would drop the backlog that builds up while the database is away.
    with TcpProxy("127.0.0.1", own_broker.port, tap=tap) as mqtt_proxy:
        svc = make_consumer(
            database_url=_via(db_url, db_proxy.port),
            mqtt_url=f"mqtt://127.0.0.1:{mqtt_proxy.port}",
            mqtt_receive_maximum=RECEIVE_MAXIMUM,
            batch_max_messages=50,
            mqtt_retry_max_s=1.0,
        )
        pub = publish(own_broker.url)
        sent = 0

        def burst(upto: int, rate: float) -> None:
            nonlocal sent
            while sent < upto:
                pub.publish(topic(topic_prefix, "OX-DB"), reading(sent))
                sent += 1
                time.sleep(1 / rate)

        burst(400, 1000)
        wait_until(lambda: count_readings(db_url) >= 200, what="some readings before the cut")

        db_proxy.cut()
        cut_at = time.monotonic()
        burst(N, 1000)  # the rest of the burst arrives while the database is away
        assert pub.flush(10), "the broker acknowledges the publisher whatever our state"
        held = []
        while time.monotonic() - cut_at < 10:
            held.append(metric(svc, "rpm_mqtt_inflight_messages"))
            time.sleep(0.1)
        stored_during_cut = count_readings(db_url)
        restored_at = time.monotonic()
        acks_while_away = tap.acks_between(cut_at + 0.5, restored_at)
        db_proxy.restore()

        assert acks_while_away == 0, "nothing may be acknowledged while the database is away"
        assert stored_during_cut < N
        # Bounded in-flight work: never more than the Receive Maximum held, the broker keeps the rest.
        assert max(held) <= RECEIVE_MAXIMUM
        assert max(held) > 0

        wait_until(lambda: count_readings(db_url) == N, 60, f"all {N} readings after the restore")
        wait_until(lambda: svc.services.readiness["mqtt"]()[0], 30, "the consumer to report ready")
        wait_until(lambda: metric(svc, "rpm_mqtt_messages_acked_total") >= N - stored_during_cut, 30,
                   "the rest acknowledged")

    assert checker.violations == [], "a PUBACK went out before its reading was committed"
    assert dead_letters(db_url) == [], "a transient storage error must never become a dead letter"
    assert metric(svc, "rpm_storage_errors_total", source="mqtt") > 0

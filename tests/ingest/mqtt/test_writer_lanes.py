"""Two batches stored at once (``RPM_MQTT_WRITERS``), against the real broker and database: a batch
that commits first still waits for the one taken before it to be acknowledged, and a batch given up
at stop keeps every batch after it unacknowledged."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from devices.mqtt.publisher import Publisher
from tests.support.mqtt_ingest import consumer_of, count_readings, metric, reading, register, topic
from tests.support.service import RunningService
from tests.support.waiting import wait_until

ACKED = "rpm_mqtt_messages_acked_total"


@pytest.fixture
def device_row_locked(db_url: str) -> Iterator[psycopg.Connection[object]]:
    """A transaction of the test's own holding device A's row: a batch with A's battery level
    waits on it (``UPDATE devices``); everything else goes through."""
    conn: psycopg.Connection[object] = psycopg.connect(db_url)
    yield conn
    conn.rollback()
    conn.close()


def _lock_device(conn: psycopg.Connection[object], device: str) -> None:
    conn.execute("SELECT 1 FROM devices WHERE id = %s FOR UPDATE", (device,))


_BLOCKED_BACKENDS = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
    " AND wait_event_type = 'Lock' AND query LIKE 'UPDATE devices SET battery_level%%'"
)


def _blocked_backends(db_url: str) -> list[int]:
    """The backends of batches waiting on the test's lock of a device row."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        return [int(pid) for (pid,) in conn.execute(_BLOCKED_BACKENDS).fetchall()]


@pytest.fixture
def first_waits_second_commits(
    db_url: str,
    pool: ConnectionPool,
    topic_prefix: str,
    device_row_locked: psycopg.Connection[object],
    make_consumer: Callable[..., RunningService],
    publish: Callable[..., Publisher],
) -> Callable[..., RunningService]:
    """Start a consumer with two storing threads (``settings`` on top); A's batch then waits on the
    locked device row while B's, taken after it, commits."""

    def start(**settings: object) -> RunningService:
        register(pool, ["LANE-A"], mrn="MRN-LANE-A")
        register(pool, ["LANE-B"], mrn="MRN-LANE-B")
        svc = make_consumer(mqtt_writers=2, batch_max_ms=5, **settings)
        _lock_device(device_row_locked, "LANE-A")
        pub = publish()
        pub.publish(topic(topic_prefix, "LANE-A"), reading(1, battery_level=40))
        assert pub.flush(10)
        wait_until(lambda: len(_blocked_backends(db_url)) == 1, what="A's batch waiting on the device row")
        pub.publish(topic(topic_prefix, "LANE-B"), reading(2))
        assert pub.flush(10)
        wait_until(lambda: count_readings(db_url, "LANE-B") == 1, what="B's batch committed")
        return svc

    return start


def test_a_batch_that_commits_first_waits_for_the_one_before_it(
    db_url: str,
    device_row_locked: psycopg.Connection[object],
    first_waits_second_commits: Callable[..., RunningService],
) -> None:
    svc = first_waits_second_commits()
    writer = consumer_of(svc).writer
    # B is committed, A is not: neither is acknowledged, both count as in flight
    assert metric(svc, ACKED) == 0
    assert count_readings(db_url, "LANE-A") == 0
    assert writer.unacked == 2
    device_row_locked.rollback()  # A goes through
    wait_until(lambda: metric(svc, ACKED) == 2, what="both acknowledged")
    assert count_readings(db_url, "LANE-A") == 1 and writer.unacked == 0
    assert writer.committed_batches == 2


def test_a_batch_given_up_at_stop_keeps_the_later_ones_unacknowledged(
    db_url: str, first_waits_second_commits: Callable[..., RunningService]
) -> None:
    svc = first_waits_second_commits(mqtt_stop_grace_s=0.2, mqtt_retry_max_s=0.5)
    consumer = consumer_of(svc)
    stopping = threading.Thread(target=consumer.writer.stop, args=(0.2,))
    stopping.start()
    # past the grace period: the writer gives up what it still holds; A's statement fails (its
    # backend is ended), so A is given up and B, committed, must not be acknowledged after it
    wait_until(lambda: consumer.writer._abandon.is_set(), what="stop giving up")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (_blocked_backends(db_url)[0],))
    stopping.join(30)
    assert not stopping.is_alive()
    assert metric(svc, ACKED) == 0
    assert count_readings(db_url, "LANE-A") == 0 and count_readings(db_url, "LANE-B") == 1

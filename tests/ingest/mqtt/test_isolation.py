"""A message that passes validation but that PostgreSQL refuses must not block its batch: the
batch is stored message by message and only that one dead-lettered.

Validation already refuses what PostgreSQL is known to refuse (NUL and other control characters),
so the test gives this database a constraint of its own that one valid-looking message breaks."""

from __future__ import annotations

import json
from collections.abc import Callable

from psycopg_pool import ConnectionPool

from devices.mqtt.publisher import Publisher
from tests.support.mqtt_ingest import count_readings, dead_letters, metric, reading, register, topic
from tests.support.service import RunningService
from tests.support.waiting import wait_until


def test_a_message_the_database_refuses_is_isolated_and_dead_lettered(
    db_url: str,
    pool: ConnectionPool,
    topic_prefix: str,
    make_consumer: Callable[..., RunningService],
    publish: Callable[..., Publisher],
) -> None:
    register(pool, ["OX-I"])
    with pool.connection() as conn:
        conn.execute(
            "ALTER TABLE readings ADD CONSTRAINT refuses_poison_hub"
            " CHECK (gateway_id IS DISTINCT FROM 'poison-hub')"
        )
    # A long linger so the poison lands in the same batch as valid messages.
    svc = make_consumer(batch_max_messages=100, batch_max_ms=1000)
    pub = publish()
    t = topic(topic_prefix, "OX-I")
    poison = json.dumps({**json.loads(reading(1000)), "gateway_id": "poison-hub"}).encode()
    for i in range(40):
        pub.publish(t, reading(i))
    pub.publish(t, poison)
    for i in range(40, 80):
        pub.publish(t, reading(i))
    assert pub.flush(10)
    wait_until(lambda: metric(svc, "rpm_mqtt_messages_acked_total") == 81, 30, "every message acked")
    assert count_readings(db_url) == 80
    [letter] = dead_letters(db_url)
    assert letter["reason"].startswith("storage refused this message: ")
    assert "SQLSTATE 23514" in letter["reason"]  # check_violation
    assert bytes(letter["raw"]) == poison and letter["topic"] == t and letter["device_id"] == "OX-I"
    assert metric(svc, "rpm_mqtt_messages_isolated_total") == 1
    assert metric(svc, "rpm_messages_dead_lettered_total", source="mqtt") == 1
    assert svc.services.readiness["mqtt"]()[0]

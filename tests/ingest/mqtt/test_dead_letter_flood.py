"""A device flooding an unregistered id over MQTT: the good readings around it are all stored,
every message is acknowledged, and the dead-letter table grows by one summary row per window, not
by one row per message, with an exact count (two consumers on one database included)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from devices.mqtt.publisher import Publisher
from ingest.mqtt.consumer import mqtt_component
from ingest.settings import Settings
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_ingest import count_readings, metric, reading, register, topic, wait_ready
from tests.support.service import RunningService, running_service
from tests.support.waiting import wait_until

LIMIT = 50


def table(url: str) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(
            "SELECT device_id, topic, reason, suppressed_count, window_start, received_at, last_seen"
            " FROM dead_letters ORDER BY id"
        )
        return cur.fetchall()


def accounted(url: str) -> int:
    """Dead letters kept in full plus those counted into summaries."""
    return sum(1 if r["window_start"] is None else r["suppressed_count"] for r in table(url))


class Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def warnings_of(name: str) -> Iterator[Warnings]:
    handler = Warnings()
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def test_a_flood_from_an_unregistered_device_is_summarised_and_nothing_is_lost(
    db_url: str,
    pool: ConnectionPool,
    topic_prefix: str,
    own_broker: Mosquitto,
    make_consumer: Callable[..., RunningService],
    publish: Callable[..., Publisher],
) -> None:
    register(pool, ["OX-F"])
    svc = make_consumer(mqtt_url=own_broker.url, dead_letter_limit=LIMIT, dead_letter_window_s=60)
    now = datetime.now(UTC)
    svc.services.pipeline.clock = lambda: now  # one window, whatever the wall clock does
    pub = publish(own_broker.url)
    flood, good = 5000, 500
    with warnings_of("ingest.services") as logged:
        for i in range(flood):
            pub.publish(topic(topic_prefix, "GHOST-1"), reading(i))
            if i % 10 == 0:
                pub.publish(topic(topic_prefix, "OX-F"), reading(i))
        assert pub.flush(60)
        wait_until(lambda: metric(svc, "rpm_mqtt_messages_acked_total") == flood + good, 120,
                   "every message acknowledged")
    assert count_readings(db_url, "OX-F") == good  # every good reading stored
    letters = table(db_url)
    full = [r for r in letters if r["window_start"] is None]
    [summary] = [r for r in letters if r["window_start"] is not None]
    assert len(full) == LIMIT and len(letters) == LIMIT + 1
    assert all(r["device_id"] == "GHOST-1" and "not registered" in r["reason"] for r in letters)
    assert summary["topic"] == topic(topic_prefix, "GHOST-1")
    assert summary["suppressed_count"] + len(full) == flood  # exact: nothing lost
    assert metric(svc, "rpm_dead_letters_suppressed_total", source="mqtt") == flood - LIMIT
    assert metric(svc, "rpm_readings_rejected_total", source="mqtt") == flood  # all counted
    flooding = [m for m in logged.messages if "over the limit" in m]
    assert len(flooding) == 1 and "'GHOST-1'" in flooding[0]  # once per key and window

    admin = svc.client(svc.token("admin"))
    [shown] = admin.get("/v1/dead-letters/summary").json()["floods"]
    assert (shown["device_id"], shown["suppressed_count"], shown["kept"]) == ("GHOST-1", flood - LIMIT, LIMIT)


def test_two_consumers_on_one_database_keep_one_exact_count(
    settings: Settings,
    db_url: str,
    pool: ConnectionPool,
    topic_prefix: str,
    own_broker: Mosquitto,
    publish: Callable[..., Publisher],
) -> None:
    register(pool, ["OX-T"])
    now = datetime.now(UTC)
    common: dict[str, Any] = {
        "mqtt_url": own_broker.url, "mqtt_shared_group": "ingest", "mqtt_session_expiry_s": 600,
        "dead_letter_limit": LIMIT, "dead_letter_window_s": 60,
        "batch_max_messages": 20,  # many small transactions from each, interleaved
    }
    with running_service(settings.model_copy(update={**common, "mqtt_client_id": "flood-a"}),
                         factories=[mqtt_component]) as a, \
            running_service(settings.model_copy(update={**common, "mqtt_client_id": "flood-b"}),
                            factories=[mqtt_component]) as b:
        for svc in (a, b):
            wait_ready(svc)
            svc.services.pipeline.clock = lambda: now
        pub = publish(own_broker.url)
        flood, good = 3000, 300
        for i in range(flood):
            pub.publish(topic(topic_prefix, "GHOST-2"), reading(i))
            if i % 10 == 0:
                pub.publish(topic(topic_prefix, "OX-T"), reading(i))
        assert pub.flush(60)

        def acked() -> float:
            return metric(a, "rpm_mqtt_messages_acked_total") + metric(b, "rpm_mqtt_messages_acked_total")

        wait_until(lambda: acked() == flood + good, 120, "every message acknowledged")
        assert metric(a, "rpm_mqtt_messages_received_total") > 0
        assert metric(b, "rpm_mqtt_messages_received_total") > 0
        suppressed = metric(a, "rpm_dead_letters_suppressed_total", source="mqtt") + metric(
            b, "rpm_dead_letters_suppressed_total", source="mqtt"
        )
    assert count_readings(db_url, "OX-T") == good
    letters = table(db_url)
    assert len(letters) == LIMIT + 1  # one count across both: the limit in full, one summary
    assert accounted(db_url) == flood
    assert suppressed == flood - LIMIT

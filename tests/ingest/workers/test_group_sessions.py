"""What Mosquitto does with the share of a shared-group member that is away, against a broker of
the test's own (the consumers run in this process: the subject is the broker's behaviour and the
consumer's session handling, not process faults).

- A member away with its session kept still gets its turn: its share of new messages waits in
  its session (stranded until the same client id comes back).
- A member that left (unsubscribe, DISCONNECT with session expiry 0) gets nothing more, and the
  broker holds no session for it.
- A member away longer than its session expiry interval: the share that waited is dropped with
  the session, and nothing tells the publisher. Hence leaving on a clean stop, stable replica ids,
  and a session expiry longer than any outage.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.mqtt.consumer import mqtt_component
from ingest.settings import Settings
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_ingest import consumer_of, count_readings, metric, wait_ready
from tests.support.serve_workers import DEVICE, publish
from tests.support.service import RunningService, running_service
from tests.support.waiting import wait_until

N = 300


@contextmanager
def member(
    settings: Settings, broker: Mosquitto, replica: str, **overrides: object
) -> Iterator[RunningService]:
    update = {
        "mqtt_url": broker.url,
        "mqtt_shared_group": "g",
        "replica": replica,
        "mqtt_session_expiry_s": 600,
        **overrides,
    }
    with running_service(settings.model_copy(update=update), factories=[mqtt_component]) as svc:
        wait_ready(svc)
        yield svc


def session_present(broker: Mosquitto, client_id: str) -> bool:
    """Connect as ``client_id`` without a clean start: does the broker still hold its session?
    (The probe ends the session it finds, with session expiry 0.)"""
    found: list[bool] = []
    done = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)

    def on_connect(_c: paho.Client, _u: object, flags: paho.ConnectFlags, _r: object, _p: object) -> None:
        found.append(flags.session_present)
        done.set()

    client.on_connect = on_connect
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 0
    client.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
    client.loop_start()
    try:
        assert done.wait(10), "no CONNACK"
    finally:
        client.disconnect()
        client.loop_stop()
    return found[0]


def test_a_member_away_with_its_session_holds_its_share_until_it_returns(
    settings: Settings, db_url: str, patient: str, topic_prefix: str, broker: Mosquitto
) -> None:
    topic = f"{topic_prefix}/{DEVICE}/readings"
    with member(settings, broker, "a"):
        with member(settings, broker, "b", mqtt_leave_on_stop=False):
            pass  # b stops keeping its session (and its subscription)
        publish(broker.port, topic, 0, N)
        wait_until(lambda: count_readings(db_url) >= N // 2, 30, "a's share")
        assert count_readings(db_url) < N  # b's share waits in b's session
        with member(settings, broker, "b", mqtt_leave_on_stop=False):
            wait_until(lambda: count_readings(db_url) == N, 30, "b's share once b is back")


def test_a_member_that_left_gets_nothing_and_keeps_no_session(
    settings: Settings, db_url: str, patient: str, topic_prefix: str, broker: Mosquitto
) -> None:
    topic = f"{topic_prefix}/{DEVICE}/readings"
    with member(settings, broker, "a"):
        with member(settings, broker, "b") as b:
            client_id = consumer_of(b).options.client_id
        assert client_id == f"{settings.mqtt_client_id}-b"
        publish(broker.port, topic, 0, N)
        wait_until(lambda: count_readings(db_url) == N, 30, "every reading, all through a")
    assert not session_present(broker, client_id)


def test_the_share_waiting_in_an_expired_session_is_lost(
    settings: Settings, db_url: str, patient: str, topic_prefix: str, broker: Mosquitto
) -> None:
    topic = f"{topic_prefix}/{DEVICE}/readings"
    with member(settings, broker, "a"):
        with member(settings, broker, "b", mqtt_leave_on_stop=False, mqtt_session_expiry_s=2):
            pass
        publish(broker.port, topic, 0, N)
        wait_until(lambda: count_readings(db_url) >= N // 2, 30, "a's share")
        wait_until(lambda: not session_present_quietly(broker, f"{settings.mqtt_client_id}-b"), 30,
                   "b's session to expire")  # fmt: skip
        with member(settings, broker, "b", mqtt_leave_on_stop=False) as b:
            publish(broker.port, topic, N, 10)  # b is a member again: it gets new messages
            wait_until(lambda: metric(b, "rpm_mqtt_messages_received_total") > 0, 30, "b's turn")
        stored = count_readings(db_url)
    assert N // 2 - 20 <= stored - 10 < N  # b's share of the first N went with its session


def session_present_quietly(broker: Mosquitto, client_id: str) -> bool:
    """Like :func:`session_present`, but without ending a live session: read the broker's log
    for the expiry instead (Mosquitto logs "Expiring client <id> due to timeout")."""
    return f"Expiring client {client_id}" not in broker.log_tail(200)

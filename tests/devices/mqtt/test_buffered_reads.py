"""Buffered reads for a receiving client: the socket wrapper on a real socket pair, and a client
built with ``buffered_reads`` receiving a burst through the real broker (packets of every size,
some larger than the read buffer, all intact and in order)."""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devices.mqtt import client as client_module
from devices.mqtt.buffered_socket import BufferedSocket
from devices.mqtt.client import connect_async, new_client, publish_qos1
from devices.mqtt.options import broker_options


def test_small_reads_come_from_one_read_ahead() -> None:
    left, right = socket.socketpair()
    with left, right:
        buffered = BufferedSocket(left, read_size=8)
        right.sendall(b"0123456789")
        assert buffered.recv(1) == b"0"
        assert buffered.pending() == 7  # one system call read 8 bytes
        assert buffered.recv(3) == b"123"
        assert buffered.recv(100) == b"4567"  # never more than the buffer holds
        assert buffered.pending() == 0
        assert buffered.recv(100) == b"89"
        left.setblocking(False)
        with pytest.raises(BlockingIOError):
            buffered.recv(1)
        assert buffered.fileno() == left.fileno()
        right.close()
        left.setblocking(True)
        assert buffered.recv(1) == b""  # the peer closed


def test_other_socket_calls_reach_the_socket() -> None:
    left, right = socket.socketpair()
    with left, right:
        buffered = BufferedSocket(left)
        assert buffered.send(b"hi") == 2
        assert right.recv(2) == b"hi"
        buffered.setblocking(False)
        assert left.getblocking() is False


def test_a_buffered_client_receives_a_burst_intact_and_in_order(mqtt_url: str) -> None:
    topic = f"test/buffered/{uuid.uuid4().hex[:8]}"
    sizes = [1, 100, 127, 128, 16_383, 16_384, 70_000, 5] + [60 + i % 300 for i in range(3000)]
    payloads = [bytes([i % 251]) * size for i, size in enumerate(sizes)]
    received: list[bytes] = []
    done = threading.Event()

    consumer_options = broker_options(mqtt_url, client_id=f"test-buf-{uuid.uuid4().hex[:8]}", protocol="5")
    consumer = new_client(consumer_options, buffered_reads=True)
    subscribed = threading.Event()

    def on_connect(client: Any, *_: Any) -> None:
        client.subscribe(topic, qos=1)

    def on_message(_c: Any, _u: Any, message: Any) -> None:
        received.append(message.payload)
        if len(received) == len(payloads):
            done.set()

    consumer.on_connect = on_connect
    consumer.on_subscribe = lambda *_: subscribed.set()
    consumer.on_message = on_message
    connect_async(consumer, consumer_options)
    publisher_options = broker_options(mqtt_url, client_id=f"test-pub-{uuid.uuid4().hex[:8]}", protocol="5")
    publisher = new_client(publisher_options)
    try:
        assert subscribed.wait(10), "no subscription"
        assert isinstance(consumer._sock, BufferedSocket)  # the read-ahead is in use
        connect_async(publisher, publisher_options)
        deadline = time.monotonic() + 10
        while not publisher.is_connected():
            assert time.monotonic() < deadline, "publisher did not connect"
            time.sleep(0.02)
        for body in payloads:
            publish_qos1(publisher, topic, body)
        assert done.wait(60), f"received {len(received)} of {len(payloads)}"
        assert received == payloads
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        consumer.disconnect()
        consumer.loop_stop()


def test_a_client_without_the_option_reads_its_socket_itself(mqtt_url: str) -> None:
    options = broker_options(mqtt_url, client_id=f"test-plain-{uuid.uuid4().hex[:8]}", protocol="5")
    client = new_client(options)
    connect_async(client, options)
    try:
        deadline = time.monotonic() + 10
        while not client.is_connected():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert type(client._sock) is socket.socket
    finally:
        client.disconnect()
        client.loop_stop()


def _collect(client: Any, topic: str, out: list[Any], ready: threading.Event, ack: bool) -> None:
    def on_connect(c: Any, *_: Any) -> None:
        c.subscribe(topic, qos=1)

    def on_message(c: Any, _u: Any, message: Any) -> None:
        out.append(message)
        if ack and message.qos == 1:
            c.ack(message.mid, message.qos)

    client.on_connect = on_connect
    client.on_subscribe = lambda *_: ready.set()
    client.on_message = on_message


def test_publishes_decoded_in_the_short_way_equal_paho_s_own(mqtt_url: str) -> None:
    """A manual-ack MQTT 5 consumer decodes a QoS 1 PUBLISH without properties itself; what its
    callback gets equals what paho's decoder gives another consumer of the same messages, and a
    PUBLISH with properties (or QoS 0, or retained) is decoded by paho as before."""
    topic = f"test/short/{uuid.uuid4().hex[:8]}"
    ours_options = broker_options(mqtt_url, client_id=f"test-short-{uuid.uuid4().hex[:8]}", protocol="5")
    quiet = logging.getLogger("test.short.paho")
    quiet.setLevel(logging.INFO)  # paho's debug line off: the short way is taken
    ours = new_client(ours_options, buffered_reads=True, manual_ack=True, log=quiet)
    theirs = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    ours_got: list[Any] = []
    theirs_got: list[Any] = []
    ours_ready, theirs_ready = threading.Event(), threading.Event()
    _collect(ours, topic, ours_got, ours_ready, ack=True)
    _collect(theirs, topic, theirs_got, theirs_ready, ack=False)
    connect_async(ours, ours_options)
    theirs.connect(ours_options.address.host, ours_options.address.port)
    theirs.loop_start()
    publisher_options = broker_options(mqtt_url, client_id=f"test-pub-{uuid.uuid4().hex[:8]}", protocol="5")
    publisher = new_client(publisher_options)
    with_props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    with_props.UserProperty = ("k", "v")
    with_props.ContentType = "application/json"
    sent = [
        (b'{"metric":"heart_rate"}', 1, False, None),
        (b"", 1, False, None),
        (b"x" * 70_000, 1, False, None),
        (b'{"with":"properties"}', 1, False, with_props),
        (b'{"qos":0}', 0, False, None),
        (b'{"retained":true}', 1, True, None),
    ]
    try:
        assert ours_ready.wait(10) and theirs_ready.wait(10), "no subscription"
        connect_async(publisher, publisher_options)
        deadline = time.monotonic() + 10
        while not publisher.is_connected():
            assert time.monotonic() < deadline, "publisher did not connect"
            time.sleep(0.02)
        for payload, qos, retain, props in sent:
            publisher.publish(topic, payload, qos=qos, retain=retain, properties=props)
        deadline = time.monotonic() + 20
        while len(ours_got) < len(sent) or len(theirs_got) < len(sent):
            assert time.monotonic() < deadline, f"got {len(ours_got)} and {len(theirs_got)} of {len(sent)}"
            time.sleep(0.02)

        def seen(m: Any) -> tuple[Any, ...]:
            return (m.topic, m.payload, m.qos, m.retain, m.dup, m.properties.json(), m.mid > 0 or m.qos == 0)

        assert [seen(m) for m in ours_got] == [seen(m) for m in theirs_got]
        short = [m.properties is client_module._NO_PROPERTIES for m in ours_got]
        assert short == [True, True, True, False, False, True]
    finally:
        publisher.publish(topic, b"", qos=1, retain=True)  # clear the retained message
        publisher.disconnect()
        publisher.loop_stop()
        ours.disconnect()
        ours.loop_stop()
        theirs.disconnect()
        theirs.loop_stop()


def test_per_topic_callbacks_still_get_their_messages(mqtt_url: str) -> None:
    """A message decoded the short way goes straight to ``on_message``; once a per-topic callback
    is added, paho's search decides again: that callback gets its topic's messages, on_message the
    rest."""
    base = f"test/filtered/{uuid.uuid4().hex[:8]}"
    options = broker_options(mqtt_url, client_id=f"test-filtered-{uuid.uuid4().hex[:8]}", protocol="5")
    quiet = logging.getLogger("test.filtered.paho")
    quiet.setLevel(logging.INFO)
    ours = new_client(options, buffered_reads=True, manual_ack=True, log=quiet)
    general: list[Any] = []
    special: list[Any] = []
    ready = threading.Event()
    _collect(ours, f"{base}/#", general, ready, ack=True)

    def on_special(c: Any, _u: Any, message: Any) -> None:
        special.append(message)
        c.ack(message.mid, message.qos)

    ours.message_callback_add(f"{base}/special", on_special)
    connect_async(ours, options)
    publisher_options = broker_options(mqtt_url, client_id=f"test-pub-{uuid.uuid4().hex[:8]}", protocol="5")
    publisher = new_client(publisher_options)
    try:
        assert ready.wait(10), "no subscription"
        connect_async(publisher, publisher_options)
        deadline = time.monotonic() + 10
        while not publisher.is_connected():
            assert time.monotonic() < deadline, "publisher did not connect"
            time.sleep(0.02)
        publisher.publish(f"{base}/special", b'{"to":"special"}', qos=1)
        publisher.publish(f"{base}/plain", b'{"to":"general"}', qos=1)
        deadline = time.monotonic() + 20
        while len(general) + len(special) < 2:
            assert time.monotonic() < deadline, f"got {len(general)} and {len(special)}"
            time.sleep(0.02)
        assert [m.payload for m in special] == [b'{"to":"special"}']
        assert [m.payload for m in general] == [b'{"to":"general"}']
        assert all(m.properties is client_module._NO_PROPERTIES for m in special + general)
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        ours.disconnect()
        ours.loop_stop()

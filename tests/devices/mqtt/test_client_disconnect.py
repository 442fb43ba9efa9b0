"""A client we disconnect ourselves logs no error: paho's network thread, running once more
between ``disconnect()`` and ``loop_stop()``, says "Client is not connected" at ERROR, which
the client factory turns into DEBUG (a lost connection would still be an error)."""

from __future__ import annotations

import logging
import time
import uuid

import pytest

from devices.mqtt.client import connect_async, new_client
from devices.mqtt.options import broker_options


def test_our_own_disconnect_logs_no_error(mqtt_url: str, caplog: pytest.LogCaptureFixture) -> None:
    options = broker_options(mqtt_url, client_id=f"test-{uuid.uuid4().hex[:8]}", protocol="3.1.1")
    log = logging.getLogger("tests.mqtt.paho")
    client = new_client(options, log=log)
    caplog.set_level(logging.DEBUG, logger=log.name)
    connect_async(client, options)
    deadline = time.monotonic() + 10
    while not client.is_connected():
        assert time.monotonic() < deadline, "no connection to the test broker"
        time.sleep(0.05)
    client.disconnect()
    time.sleep(0.5)  # the network thread sends DISCONNECT, closes the socket and loops once more
    client.loop_stop()

    paho_lines = [r for r in caplog.records if r.name == log.name]
    assert not [r for r in paho_lines if r.levelno >= logging.WARNING], [r.getMessage() for r in paho_lines]
    assert any("Client is not connected" in r.getMessage() for r in paho_lines)  # kept, as DEBUG

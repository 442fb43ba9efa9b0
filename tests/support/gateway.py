"""Helpers for the gateway tests: wire readings, and an MQTT subscriber on a real broker."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from devices.gateway.queue_store import Entry
from devices.gateway.runner import Gateway, GatewaySettings
from devices.mqtt.options import broker_options

BASE = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def reading(i: int, *, metric: str = "heart_rate", at: datetime | None = None) -> dict[str, Any]:
    """Wire reading number ``i`` (one a minute from BASE unless ``at`` is given)."""
    moment = at or BASE + timedelta(minutes=i)
    return {
        "metric": metric,
        "value": float(50 + i % 70),
        "unit": "/min",
        "measured_at": moment.isoformat(),
        "status": [],
        "source": "ble",
    }


def entries(n: int, *, devices: tuple[str, ...] = ("DEV0001",), start: int = 0) -> list[Entry]:
    """``n`` one-reading entries, round-robin over ``devices``."""
    return [Entry(devices[i % len(devices)], [reading(start + i)]) for i in range(n)]


class Subscriber:
    """Collects what arrives on ``topic`` (QoS 1), in arrival order, from its own thread."""

    def __init__(self, url: str, topic: str, *, persistent: bool = False) -> None:
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 1883
        self._topic = topic
        self._subscribed = threading.Event()
        self._lock = threading.Lock()
        self._messages: list[tuple[str, dict[str, Any]]] = []
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-sub-{uuid.uuid4().hex[:10]}",
            clean_session=not persistent,
        )
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(1, 1)

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure and not flags.session_present:
            client.subscribe(self._topic, qos=1)
        elif not reason.is_failure:
            self._subscribed.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self._messages.append((message.topic, json.loads(message.payload)))

    def __enter__(self) -> Subscriber:
        self._client.connect(self._host, self._port)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("subscription not acknowledged")
        return self

    def __exit__(self, *_: object) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    @property
    def messages(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return list(self._messages)

    def readings(self) -> list[dict[str, Any]]:
        """Every reading received, in order, with the message's device id added."""
        return [
            {"device_id": payload["device_id"], **r}
            for _topic, payload in self.messages
            for r in payload["readings"]
        ]

    def wait_for(self, n_readings: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.readings()
            if len(got) >= n_readings:
                return got
            time.sleep(0.05)
        raise AssertionError(f"only {len(self.readings())} of {n_readings} readings arrived")


def drain_gateway(
    data_dir: Path, url: str, prefix: str, *, max_queue_bytes: int = 64 * 1024 * 1024
) -> Gateway:
    """A gateway without Bluetooth (drain-only) publishing to ``url`` under ``prefix``."""
    settings = GatewaySettings(
        gateway_id="hub-test",
        data_dir=data_dir,
        broker=broker_options(
            url, client_id=f"hub-test-{uuid.uuid4().hex[:8]}", protocol="3.1.1", reconnect_max_s=1
        ),
        tz=UTC,
        topic_prefix=prefix,
        max_queue_bytes=max_queue_bytes,
    )
    return Gateway(settings, None)

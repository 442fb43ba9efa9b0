"""Fixtures for the MQTT tests: a consumer service, publishers and a broker of the test's own
(helpers in tests/support/mqtt_ingest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devices.mqtt.publisher import Publisher
from ingest.mqtt.consumer import mqtt_component
from ingest.settings import Settings
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_ingest import publisher_options, wait_ready
from tests.support.service import RunningService, running_service


@pytest.fixture
def make_consumer(settings: Settings) -> Iterator[Callable[..., RunningService]]:
    """Start the real service with only the MQTT consumer; stopped at teardown (or by the test)."""
    stack: list[Any] = []

    def start(*, wait: bool = True, **overrides: Any) -> RunningService:
        overrides.setdefault("mqtt_session_expiry_s", 600)  # do not leave week-long sessions behind
        cm = running_service(settings.model_copy(update=overrides), factories=[mqtt_component])
        svc = cm.__enter__()
        stack.append(cm)
        if wait:
            wait_ready(svc)
        return svc

    yield start
    while stack:
        stack.pop().__exit__(None, None, None)


@pytest.fixture
def publish(mqtt_url: str) -> Iterator[Callable[..., Publisher]]:
    publishers: list[Publisher] = []

    def make(url: str | None = None, *, protocol: str = "5", max_pending: int = 1000) -> Publisher:
        client_id = f"pub-{len(publishers)}-{id(publishers)}"
        pub = Publisher(
            publisher_options(url or mqtt_url, protocol=protocol, client_id=client_id),
            max_pending=max_pending,
        )
        pub.start()
        publishers.append(pub)
        return pub

    yield make
    for pub in publishers:
        pub.close()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A Mosquitto of the test's own, configured with deploy/mosquitto/mosquitto.conf."""
    with Mosquitto(tmp_path / "mosquitto", service_config=True) as broker:
        yield broker

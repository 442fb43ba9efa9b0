from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from ingest.security.audit import RouteInfo, app_routes
from ingest.settings import Settings
from tests.ingest.security.route_cases import Probe
from tests.support.service import RunningService, running_service

STREAM_READ_S = 1.0


@pytest.fixture
def full_service(settings: Settings) -> Iterator[RunningService]:
    """The service with every default component (so every router is mounted); MQTT consumer off."""
    with running_service(settings.model_copy(update={"mqtt_enabled": False}), factories=None) as svc:
        yield svc


def api_routes(svc: RunningService) -> list[RouteInfo]:
    assert svc.runtime.app is not None
    return app_routes(svc.runtime.app)


def perform(client: httpx.Client, probe: Probe) -> tuple[int, str]:
    """Send a probe; a stream is read for a moment (it never ends by itself)."""
    if not probe.stream:
        r = client.request(probe.method, probe.path, params=probe.params, json=probe.json)
        return r.status_code, r.text
    timeout = httpx.Timeout(5.0, read=STREAM_READ_S)
    with client.stream(probe.method, probe.path, params=probe.params, timeout=timeout) as r:
        if r.status_code != 200:
            return r.status_code, r.read().decode()
        received = bytearray()
        deadline = time.monotonic() + STREAM_READ_S
        try:
            for chunk in r.iter_raw():
                received += chunk
                if time.monotonic() > deadline or len(received) > 65536:
                    break
        except httpx.ReadTimeout:
            pass  # nothing more arrived: the stream holds nothing else for this caller
        return r.status_code, received.decode(errors="replace")

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ingest.dashboard.component import dashboard_component
from ingest.settings import Settings
from ingest.smart.component import smart_component
from tests.support.service import RunningService, free_port, running_service
from tests.support.smart_server import SmartTestServer, add_clinic, running_smart_server, smart_settings


@pytest.fixture
def smart() -> Iterator[SmartTestServer]:
    """The EHR's SMART authorization server (configured as an issuer of clinic ``north``)."""
    with running_smart_server() as server:
        yield server


@pytest.fixture
def stranger() -> Iterator[SmartTestServer]:
    """Another SMART server the service is not registered with."""
    with running_smart_server() as server:
        yield server


def _start(settings: Settings, smart: SmartTestServer, secret: str | None) -> Iterator[RunningService]:
    assert settings.database_url is not None
    add_clinic(settings.database_url, "north")
    port = free_port()
    configured = smart_settings(settings, smart, f"http://127.0.0.1:{port}", secret=secret)
    with running_service(configured, factories=[dashboard_component, smart_component], port=port) as svc:
        yield svc


@pytest.fixture
def app(settings: Settings, smart: SmartTestServer) -> Iterator[RunningService]:
    """The service (dashboard + SMART launch) as a public client of ``smart``."""
    yield from _start(settings, smart, None)


@pytest.fixture
def confidential_app(settings: Settings, smart: SmartTestServer) -> Iterator[RunningService]:
    """The service as a confidential client (client_secret_basic)."""
    yield from _start(settings, smart, "s3cret-of-the-dashboard-client")

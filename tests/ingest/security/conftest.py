"""Fixtures for the security tests (probes and how they are sent: route_cases.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ingest.settings import Settings
from tests.support.service import RunningService, running_service


@pytest.fixture
def full_service(settings: Settings) -> Iterator[RunningService]:
    """The service with every default component (so every router is mounted); MQTT consumer off."""
    with running_service(settings.model_copy(update={"mqtt_enabled": False}), factories=None) as svc:
        yield svc

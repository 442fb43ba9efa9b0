"""Fixtures for the security tests (probes and how they are sent: route_cases.py)."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import ip_network

import pytest

from ingest.settings import Settings
from tests.support.service import RunningService, running_service


@pytest.fixture
def full_service(settings: Settings) -> Iterator[RunningService]:
    """The service with every default component (so every router is mounted); MQTT consumer off;
    webhooks may point at 127.0.0.1 (each tenant registers one there: RPM_WEBHOOK_ALLOW_NETWORKS)."""
    update = {"mqtt_enabled": False, "webhook_allow_networks": (ip_network("127.0.0.1/32"),)}
    with running_service(settings.model_copy(update=update), factories=None) as svc:
        yield svc

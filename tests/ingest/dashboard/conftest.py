from __future__ import annotations

from collections.abc import Iterator

import pytest

from ingest.dashboard.component import dashboard_component
from ingest.settings import Settings
from tests.support.service import RunningService, running_service


@pytest.fixture
def dashboard(settings: Settings) -> Iterator[RunningService]:
    """The real HTTP service with the dashboard component (no MQTT, alerts or export)."""
    with running_service(settings, factories=[dashboard_component]) as svc:
        yield svc


@pytest.fixture
def dashboard_with_alerts(settings: Settings) -> Iterator[RunningService]:
    """The dashboard with the real alert engine evaluating what is ingested."""
    from ingest.alerts.component import alerts_component

    with running_service(settings, factories=[alerts_component, dashboard_component]) as svc:
        yield svc

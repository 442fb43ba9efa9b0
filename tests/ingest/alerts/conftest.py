"""Fixtures for the alert tests: the real service (HTTP + alerts component) on a database of the
test's own, and a clinic client over it (helpers in tests/support/alerts.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ingest.alerts.component import alerts_component
from ingest.settings import Settings
from tests.support.alerts import Clinic, alert_settings
from tests.support.service import RunningService, running_service


@pytest.fixture
def svc(settings: Settings) -> Iterator[RunningService]:
    """The real HTTP service with the alerts component (hook, routes, background work)."""
    with running_service(alert_settings(settings), factories=[alerts_component]) as s:
        yield s


@pytest.fixture
def clinic(svc: RunningService) -> Iterator[Clinic]:
    with svc.client(svc.token("admin", name="admin-1")) as http:
        yield Clinic(svc, http)

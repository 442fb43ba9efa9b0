"""Fixtures for the alert tests: the real service (HTTP + alerts component) on a database of the
test's own, and a clinic client over it (helpers in tests/support/alerts.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from ingest.alerts.component import alerts_component
from ingest.settings import Settings
from tests.support import alerts as alert_times
from tests.support.alerts import Clinic, alert_settings
from tests.support.service import RunningService, running_service


@pytest.fixture(autouse=True)
def fresh_now(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """``NOW`` (tests/support/alerts.py) is the time each test starts, not the time the session
    imported it: the scheduler's clock is driven from it (``tick(NOW + 20 min)``) while alerts
    open at the database's real time, so a long session would otherwise make "20 minutes after
    the alert" fall before it."""
    now = datetime.now(UTC).replace(microsecond=0)
    if getattr(request.module, "NOW", None) is alert_times.NOW:
        monkeypatch.setattr(request.module, "NOW", now)
    monkeypatch.setattr(alert_times, "NOW", now)


@pytest.fixture
def svc(settings: Settings) -> Iterator[RunningService]:
    """The real HTTP service with the alerts component (hook, routes, background work)."""
    with running_service(alert_settings(settings), factories=[alerts_component]) as s:
        yield s


@pytest.fixture
def clinic(svc: RunningService) -> Iterator[Clinic]:
    with svc.client(svc.token("admin", name="admin-1")) as http:
        yield Clinic(svc, http)

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ingest.settings import Settings
from tests.support.service import RunningService, running_service


@pytest.fixture
def service(settings: Settings) -> Iterator[RunningService]:
    """The real HTTP service over a database of the test's own (no background components)."""
    with running_service(settings, factories=[]) as svc:
        yield svc

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.settings import Settings
from tests.support.service import RunningService, running_service


@pytest.fixture
def settings(db_url: str, tmp_path: Path, topic_prefix: str, mqtt_url: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=db_url,
        mqtt_url=mqtt_url,
        mqtt_topic_prefix=topic_prefix,
        mqtt_client_id=f"svc-{topic_prefix.split('/')[0]}",
        data_dir=tmp_path,
    )


@pytest.fixture
def service(settings: Settings) -> Iterator[RunningService]:
    """The real HTTP service over a database of the test's own (no background components)."""
    with running_service(settings, factories=[]) as svc:
        yield svc

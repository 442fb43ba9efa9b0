"""Fixtures of the tests across processes: a Mosquitto of the test's own, configured as shipped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg_pool import ConnectionPool

from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_ingest import register
from tests.support.serve_workers import DEVICE


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A private Mosquitto with deploy/mosquitto/mosquitto.conf (persistence, queue limits)."""
    with Mosquitto(tmp_path / "mosquitto", service_config=True) as own:
        yield own


@pytest.fixture
def patient(pool: ConnectionPool) -> str:
    """A patient wearing ``DEVICE``."""
    return register(pool, [DEVICE], mrn="MRN-WORKERS")

"""Shared fixtures: a real PostgreSQL database per test (cloned from a migrated template) and a
real MQTT broker with a topic prefix of its own per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from psycopg_pool import ConnectionPool

from ingest.db.migrate import migrate
from ingest.db.pool import open_pool
from ingest.settings import Settings
from ingest.store.readings import prepare_session
from tests.support.db import RUN_ID, create_database, drop_database


@pytest.fixture(scope="session")
def template_database() -> Iterator[str]:
    """A database migrated once per run; each test clones it."""
    name = f"rpm_test_{RUN_ID}_tmpl"
    drop_database(name)
    url = create_database(name)
    migrate(url, timescale_mode="off")
    yield name
    drop_database(name)


@pytest.fixture(scope="session")
def database_clones(template_database: str) -> Iterator[Callable[[], tuple[str, str]]]:
    """Clones of the template, each made while the test before it runs: ``take()`` hands over a
    ready one (name, URL) and starts the next. Cloning waits mostly on the disk, not the CPU."""

    def clone() -> tuple[str, str]:
        name = f"rpm_test_{RUN_ID}_{uuid.uuid4().hex[:10]}"
        return name, create_database(name, template=template_database)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-clone") as executor:
        spare: list[Future[tuple[str, str]]] = [executor.submit(clone)]

        def take() -> tuple[str, str]:
            ready = spare.pop()
            spare.append(executor.submit(clone))
            return ready.result()

        try:
            yield take
        finally:
            for left in spare:
                try:
                    drop_database(left.result()[0])
                except Exception:  # noqa: BLE001 - a clone that failed has nothing to drop
                    pass


@pytest.fixture
def db_url(database_clones: Callable[[], tuple[str, str]]) -> Iterator[str]:
    """A fresh, migrated database of this test's own."""
    name, url = database_clones()
    yield url
    drop_database(name)


@pytest.fixture
def pool(db_url: str) -> Iterator[ConnectionPool]:
    p = open_pool(db_url, min_size=1, max_size=4, name="test", prepare=prepare_session)
    yield p
    p.close()


@pytest.fixture
def topic_prefix() -> str:
    """An MQTT topic prefix no other test (or run) uses."""
    return f"test-{RUN_ID}-{uuid.uuid4().hex[:8]}/rpm"


@pytest.fixture(scope="session")
def mqtt_url() -> str:
    return os.environ.get("RPM_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")


@pytest.fixture
def settings(db_url: str, tmp_path: Path, topic_prefix: str, mqtt_url: str) -> Settings:
    """Service settings over this test's database, broker topics and data directory."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=db_url,
        mqtt_url=mqtt_url,
        mqtt_topic_prefix=topic_prefix,
        mqtt_client_id=f"svc-{topic_prefix.split('/')[0]}",
        data_dir=tmp_path,
    )

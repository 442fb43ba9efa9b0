"""Retention of raw readings: a batched delete on plain PostgreSQL, a policy on TimescaleDB."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest

from ingest.db import timescale
from ingest.db.migrate import migrate
from ingest.security.retention import RetentionJob, retention_component
from ingest.settings import Settings
from tests.ingest.security.tenants import NOW, iso
from tests.ingest.test_timescale import timescale_url  # noqa: F401 - the TimescaleDB server fixture
from tests.support.service import RunningService, running_service


def job_of(svc: RunningService) -> RetentionJob:
    for component in svc.runtime.components:
        job = component.extras.get("retention")
        if isinstance(job, RetentionJob):
            return job
    raise AssertionError("no retention job")


@pytest.fixture
def keeping_30_days(settings: Settings) -> Iterator[RunningService]:
    update = {"readings_retention_days": 30, "retention_interval_s": 3600}
    with running_service(settings.model_copy(update=update), factories=[retention_component]) as svc:
        yield svc


def seed(svc: RunningService, ages_days: list[float]) -> None:
    admin = svc.client(svc.token("admin"))
    patient = admin.post("/v1/patients", json={"mrn": "R-1", "display_name": "Retention Example"}).json()
    assert admin.post("/v1/devices", json={"id": "SCALE-R", "type": "scale"}).status_code == 201
    r = admin.put(
        "/v1/devices/SCALE-R/assignment",
        json={"patient_id": patient["id"], "since": iso(NOW - timedelta(days=4000))},
    )
    assert r.status_code == 200
    readings = [
        {"metric": "body_weight", "value": 80, "unit": "kg", "measured_at": iso(NOW - timedelta(days=age))}
        for age in ages_days
    ]
    r = admin.post("/v1/readings", json={"device_id": "SCALE-R", "readings": readings})
    assert r.json()["accepted"] == len(ages_days), r.text


def ages(svc: RunningService) -> list[int]:
    with svc.services.pool.connection() as conn:
        rows = conn.execute("SELECT measured_at FROM readings ORDER BY measured_at").fetchall()
    return sorted(round((NOW - row[0]).total_seconds() / 86400) for row in rows)


def test_readings_past_the_retention_are_deleted(keeping_30_days: RunningService) -> None:
    seed(keeping_30_days, [365, 45, 31, 29, 1, 0])
    job = job_of(keeping_30_days)
    job.batch = 1  # several batches, each its own transaction
    assert job.run_once(NOW) == 3
    assert ages(keeping_30_days) == [0, 1, 29]
    assert job.run_once(NOW) == 0
    # the audit log is kept whatever the retention
    with keeping_30_days.services.pool.connection() as conn:
        row = conn.execute("SELECT count(*) FROM audit_log").fetchone()
    assert row is not None and row[0] > 0


def test_without_a_retention_nothing_is_deleted(service: RunningService) -> None:
    seed(service, [3650, 1])
    job = RetentionJob(service.services)
    job.start()
    try:
        assert job.run_once(NOW) == 0
    finally:
        job.stop()
    assert ages(service) == [1, 3650]


def test_retention_setting_is_validated() -> None:
    for bad in (0, -1, 100_000):
        with pytest.raises(ValueError):
            Settings(_env_file=None, readings_retention_days=bad)  # type: ignore[call-arg]


def test_timescaledb_gets_a_retention_policy(timescale_url: str) -> None:  # noqa: F811
    migrate(timescale_url)
    with psycopg.connect(timescale_url, autocommit=True) as conn:
        assert timescale.is_enabled(conn)

        def policies() -> list[str]:
            rows = conn.execute(
                "SELECT config->>'drop_after' FROM timescaledb_information.jobs"
                " WHERE proc_name = 'policy_retention' AND hypertable_name = 'readings'"
            ).fetchall()
            return [r[0] for r in rows]

        timescale.set_retention(conn, 30)
        assert policies() == ["30 days"]
        timescale.set_retention(conn, 90)  # changing it replaces the policy
        assert policies() == ["90 days"]
        timescale.set_retention(conn, None)
        assert policies() == []

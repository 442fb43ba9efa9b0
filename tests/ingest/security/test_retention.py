"""Retention of raw readings: a batched delete on plain PostgreSQL, a policy on TimescaleDB; and
the dead-letter retention and cap."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest

from ingest.db import timescale
from ingest.db.migrate import migrate
from ingest.security.retention import DeadLetterPrune, RetentionJob, retention_component
from ingest.settings import Settings
from ingest.store.deadletters import DeadLetter, DeadLetterLimit, insert_dead_letters
from tests.ingest.security.tenants import NOW, iso
from tests.ingest.test_timescale import timescale_url  # noqa: F401 - the TimescaleDB server fixture
from tests.support.service import RunningService, running_service
from tests.support.waiting import wait_until


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


def test_dead_letters_past_their_retention_then_beyond_the_cap_are_deleted(settings: Settings) -> None:
    update = {"dead_letter_retention_days": 30, "dead_letter_max_rows": 4, "dead_letter_window_s": 60}
    with running_service(settings.model_copy(update=update), factories=[]) as svc:
        job = RetentionJob(svc.services)  # not started: each pass is run here, at a fixed time
        job.batch = 1  # several batches, each its own transaction

        def letter(device: str) -> DeadLetter:
            return DeadLetter.build("mqtt", "not registered", b"x", device_id=device)

        flooding = DeadLetterLimit(per_window=1, window_s=60)
        with svc.services.transaction() as conn:
            for age in (40, 31, 29, 3, 2, 1):
                insert_dead_letters(conn, [letter(f"D{age}")], received_at=NOW - timedelta(days=age))
            # a flood 35 days ago (one full row, one summary) and one still counting
            insert_dead_letters(conn, [letter("OLD")] * 3, received_at=NOW - timedelta(days=35),
                                limit=flooding)
            insert_dead_letters(conn, [letter("NOW")] * 3, received_at=NOW, limit=flooding)

        def left() -> list[tuple[str, int]]:
            with svc.services.transaction() as conn:
                rows = conn.execute(
                    "SELECT device_id, suppressed_count FROM dead_letters ORDER BY id"
                ).fetchall()
            return [(r[0], r[1]) for r in rows]

        # retention: 40, 31 and the old flood (its summary by its last letter); then the cap of 4
        # rows: the two oldest left (29, 3); the past window's count is forgotten
        assert job.prune_dead_letters(NOW) == DeadLetterPrune(expired=4, over_cap=2, windows=1, rows=4)
        assert left() == [("D2", 0), ("D1", 0), ("NOW", 0), ("NOW", 2)]
        metrics = svc.services.metrics.registry
        assert metrics.get_sample_value("rpm_dead_letter_rows") == 4
        assert metrics.get_sample_value("rpm_dead_letters_deleted_total", {"reason": "retention"}) == 4
        assert metrics.get_sample_value("rpm_dead_letters_deleted_total", {"reason": "cap"}) == 2
        assert job.prune_dead_letters(NOW) == DeadLetterPrune(expired=0, over_cap=0, windows=0, rows=4)

        # the summary of a window still counting is never deleted by the cap, even the oldest row
        with svc.services.transaction() as conn:
            insert_dead_letters(conn, [letter("NEWEST")], received_at=NOW)
        job.dead_letter_max_rows = 1
        assert job.prune_dead_letters(NOW) == DeadLetterPrune(expired=0, over_cap=4, windows=0, rows=1)
        assert left() == [("NOW", 2)]
        # once its window has passed, it is an ordinary old row
        later = NOW + timedelta(minutes=5)
        with svc.services.transaction() as conn:
            insert_dead_letters(conn, [letter("LATER")], received_at=later)
        assert job.prune_dead_letters(later) == DeadLetterPrune(expired=0, over_cap=1, windows=1, rows=1)
        assert left() == [("LATER", 0)]


def test_dead_letter_bounds_can_be_turned_off_and_are_validated(settings: Settings) -> None:
    update = {"dead_letter_retention_days": 0, "dead_letter_max_rows": 0}
    with running_service(settings.model_copy(update=update), factories=[]) as svc:
        job = RetentionJob(svc.services)
        with svc.services.transaction() as conn:
            insert_dead_letters(conn, [DeadLetter.build("http", "bad", b"")] * 3,
                                received_at=NOW - timedelta(days=3650))
        assert job.prune_dead_letters(NOW) == DeadLetterPrune(expired=0, over_cap=0, windows=0, rows=3)
    for name, bad in (("dead_letter_limit", -1), ("dead_letter_window_s", 0),
                      ("dead_letter_max_rows", -1), ("dead_letter_retention_days", 100_000)):
        with pytest.raises(ValueError):
            Settings(_env_file=None, **{name: bad})  # type: ignore[arg-type, call-arg]


def test_a_failing_round_does_not_end_the_retention_thread(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A statement failing (here: its table renamed away, a programming error, not an outage) is
    logged and retried next round; once the table is back, the next round applies the cap."""
    with running_service(settings.model_copy(update={"dead_letter_max_rows": 2}), factories=[]) as svc:
        job = RetentionJob(svc.services)
        job.check_s = 0.05
        with svc.services.pool.connection() as conn:
            conn.execute("ALTER TABLE dead_letters RENAME TO dead_letters_away")
        caplog.set_level(logging.WARNING, logger="ingest.security.retention")
        job.start()
        try:
            wait_until(lambda: any(
                "retention postponed (UndefinedTable)" in r.getMessage() for r in caplog.records
            ), what="a failed retention round")
            with svc.services.pool.connection() as conn:
                conn.execute("ALTER TABLE dead_letters_away RENAME TO dead_letters")
                insert_dead_letters(conn, [DeadLetter.build("http", "bad", b"")] * 5, received_at=NOW)

            def rows() -> int:
                with svc.services.pool.connection() as conn:
                    row = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
                assert row is not None
                return int(row[0])

            wait_until(lambda: rows() == 2, what="the next round applying the cap")
        finally:
            job.stop()

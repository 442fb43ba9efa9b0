"""The TimescaleDB path against a real TimescaleDB (the PGlite WASM build served over the wire).

PGlite allows one connection at a time, has no COPY FROM STDIN and runs no background jobs, so this
test covers the DDL (migrations + hypertable + compression + continuous aggregate) and a bucket query.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from ingest.db import timescale
from ingest.db.migrate import available_migrations, migrate
from ingest.store.readings import query_buckets, raw_buckets
from tests.support.node import ensure_node_project
from tests.support.service import free_port

SERVER_DIR = Path(__file__).resolve().parents[1] / "timescale_server"


@pytest.fixture(scope="module")
def timescale_url() -> Iterator[str]:
    node = ensure_node_project(SERVER_DIR, legacy_peer_deps=True)
    port = free_port()
    proc = subprocess.Popen(
        [node, "server.mjs", str(port)], cwd=SERVER_DIR, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("LISTENING"), f"TimescaleDB test server did not start: {line!r}"
        url = f"postgresql://postgres:postgres@127.0.0.1:{port}/postgres?sslmode=disable"
        deadline = time.monotonic() + 60
        while True:
            try:
                psycopg.connect(url, connect_timeout=5).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_schema_becomes_a_hypertable_with_aggregate(timescale_url: str) -> None:
    assert migrate(timescale_url) == [m.version for m in available_migrations()]
    assert migrate(timescale_url) == []  # idempotent, Timescale set-up included
    with psycopg.connect(timescale_url, autocommit=True) as conn:
        assert timescale.is_available(conn) and timescale.is_enabled(conn)
        row = conn.execute(
            "SELECT compression_enabled FROM timescaledb_information.hypertables"
            " WHERE hypertable_name = 'readings'"
        ).fetchone()
        assert row == (True,)
        views = conn.execute(
            "SELECT view_name FROM timescaledb_information.continuous_aggregates"
        ).fetchall()
        assert (timescale.HOURLY_VIEW,) in views
        jobs = {r[0] for r in conn.execute("SELECT proc_name FROM timescaledb_information.jobs")}
        assert {"policy_compression", "policy_refresh_continuous_aggregate"} <= jobs

        patient = conn.execute(
            "INSERT INTO patients (clinic_id, mrn, display_name) VALUES ('default', %s, 'T')"
            " RETURNING id",
            (uuid.uuid4().hex,),
        ).fetchone()
        assert patient is not None
        conn.execute("INSERT INTO devices (id, clinic_id, type) VALUES ('TS-1', 'default', 'hr')")
        start = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
        for minute, value in [(0, 60.0), (20, 70.0), (59, 80.0), (61, 90.0)]:
            conn.execute(
                "INSERT INTO readings (device_id, metric, measured_at, patient_id, value, unit,"
                " original_value, original_unit) VALUES ('TS-1', 'heart_rate', %s, %s, %s, '/min',"
                " %s, '/min')",
                (start + timedelta(minutes=minute), patient[0], value, value),
            )
        buckets = query_buckets(
            conn, patient_id=patient[0], metrics=["heart_rate"], since=start,
            until=start + timedelta(hours=2), width=timedelta(hours=1),
        )
        assert [(b["bucket_start"], b["min"], b["max"], b["avg"], b["count"]) for b in buckets] == [
            (start, 60.0, 80.0, 70.0, 3),
            (start + timedelta(hours=1), 90.0, 90.0, 90.0, 1),
        ]
        # time_bucket on the hypertable agrees with date_bin
        tb = conn.execute(
            "SELECT time_bucket(INTERVAL '1 hour', measured_at), count(*) FROM readings"
            " GROUP BY 1 ORDER BY 1"
        ).fetchall()
        assert [(t, n) for t, n in tb] == [(start, 3), (start + timedelta(hours=1), 1)]
        # the continuous aggregate answers too (real-time aggregation covers unmaterialised data)
        conn.execute(f"CALL refresh_continuous_aggregate('{timescale.HOURLY_VIEW}', NULL, NULL)")
        hourly = conn.execute(
            f"SELECT bucket_start, count FROM {timescale.HOURLY_VIEW} ORDER BY bucket_start"
        ).fetchall()
        assert hourly == [(start, 3), (start + timedelta(hours=1), 1)]
        timescale.set_retention(conn, 365)
        timescale.set_retention(conn, None)


def _patient_with_device(conn: psycopg.Connection[object], device: str) -> uuid.UUID:
    row = conn.execute(
        "INSERT INTO patients (clinic_id, mrn, display_name) VALUES ('default', %s, 'T') RETURNING id",
        (uuid.uuid4().hex,),
    ).fetchone()
    assert row is not None
    conn.execute("INSERT INTO devices (id, clinic_id, type) VALUES (%s, 'default', 'hr')", (device,))
    patient: uuid.UUID = row[0]
    return patient


def _insert(conn: psycopg.Connection[object], device: str, patient: uuid.UUID,
            rows: list[tuple[datetime, float]]) -> None:
    # one statement (this server takes neither COPY nor executemany's pipeline)
    conn.execute(
        "INSERT INTO readings (device_id, metric, measured_at, patient_id, value, unit, original_value,"
        " original_unit) SELECT %s, 'heart_rate', at, %s, v, '/min', v, '/min'"
        " FROM unnest(%s::timestamptz[], %s::float8[]) AS r(at, v) ON CONFLICT DO NOTHING",
        (device, patient, [at for at, _ in rows], [value for _, value in rows]),
    )


def test_policies_and_aggregates_with_the_refresh_window_inside_the_retention(timescale_url: str) -> None:
    migrate(timescale_url)
    with psycopg.connect(timescale_url, autocommit=True) as conn:
        views = {
            r[0]: r[1]
            for r in conn.execute(
                "SELECT view_name, compression_enabled FROM timescaledb_information.continuous_aggregates"
            )
        }
        assert views == {timescale.HOURLY_VIEW: True, timescale.DAILY_VIEW: True}
        jobs = timescale.policy_jobs(conn)
        assert {
            ("policy_compression", "readings"),
            ("policy_compression", timescale.HOURLY_VIEW),
            ("policy_compression", timescale.DAILY_VIEW),
            ("policy_refresh_continuous_aggregate", timescale.HOURLY_VIEW),
            ("policy_refresh_continuous_aggregate", timescale.DAILY_VIEW),
        } <= set(jobs)

        def refresh_start() -> set[str]:
            return {
                r[0]
                for r in conn.execute(
                    "SELECT config->>'start_offset' FROM timescaledb_information.jobs"
                    " WHERE proc_name = 'policy_refresh_continuous_aggregate'"
                )
            }

        assert refresh_start() == {"35 days"}
        timescale.set_retention(conn, 30)
        assert ("policy_retention", "readings") in timescale.policy_jobs(conn)
        assert refresh_start() == {"29 days"}  # a refresh never reaches raw data already dropped
        timescale.set_retention(conn, None)
        assert ("policy_retention", "readings") not in timescale.policy_jobs(conn)
        assert refresh_start() == {"35 days"}
        timescale.setup(conn)  # again: nothing changes, nothing fails
        assert len(timescale.policy_jobs(conn)) == len(jobs)
    assert [timescale.refresh_days_for(d) for d in (None, 1, 4, 30, 365)] == [35, 3, 3, 29, 35]


def test_policies_compress_and_drop_while_the_aggregates_keep_the_history(timescale_url: str) -> None:
    """Background workers do not run in this build: each policy is run as its job would be."""
    migrate(timescale_url)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with psycopg.connect(timescale_url, autocommit=True) as conn:
        patient = _patient_with_device(conn, "TS-2")
        old, middle = now - timedelta(days=200), now - timedelta(days=20)
        _insert(conn, "TS-2", patient, [(old, 50.0), (old + timedelta(minutes=5), 70.0),
                                        (middle, 80.0), (now - timedelta(hours=2), 90.0)])
        for view in (timescale.HOURLY_VIEW, timescale.DAILY_VIEW):
            conn.execute(f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)")
        jobs = timescale.policy_jobs(conn)
        conn.execute(f"CALL run_job({jobs[('policy_compression', 'readings')]})")

        def compressed(at: datetime) -> bool:
            row = conn.execute(
                "SELECT is_compressed FROM timescaledb_information.chunks WHERE hypertable_name ="
                " 'readings' AND range_start <= %s AND range_end > %s",
                (at, at),
            ).fetchone()
            return bool(row and row[0])

        assert compressed(middle) and not compressed(now - timedelta(hours=2))
        # a late reading still goes into a compressed chunk, and a repeat is still absorbed
        _insert(conn, "TS-2", patient, [(middle + timedelta(minutes=1), 81.0), (middle, 99.0)])
        row = conn.execute(
            "SELECT count(*), max(value) FROM readings WHERE device_id = 'TS-2'"
            " AND measured_at >= %s AND measured_at < %s",
            (middle, middle + timedelta(hours=1)),
        ).fetchone()
        assert row == (2, 81.0)

        timescale.set_retention(conn, 90)
        conn.execute(f"CALL run_job({timescale.policy_jobs(conn)[('policy_retention', 'readings')]})")
        timescale.set_retention(conn, None)
        remaining = conn.execute(
            "SELECT min(measured_at) FROM readings WHERE device_id = 'TS-2'"
        ).fetchone()
        assert remaining == (middle,)
        day = old.replace(hour=0)
        window = {"patient_id": patient, "metrics": ["heart_rate"], "since": day,
                  "until": day + timedelta(days=1), "width": timedelta(days=1)}
        assert query_buckets(conn, **window) == [  # type: ignore[arg-type]
            {"metric": "heart_rate", "bucket_start": day, "min": 50.0, "max": 70.0, "avg": 60.0, "count": 2}
        ]
        assert raw_buckets(conn, **window) == []  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("width", "since_h", "until_h", "reads_aggregate"),
    [
        (timedelta(hours=1), 0.25, 47.5, True),  # partial hours at either end come from raw rows
        (timedelta(hours=6), 1.5, 30.2, True),
        (timedelta(days=1), 0.0, 48.0, True),
        (timedelta(days=1), 5.0, 47.0, False),  # no whole day inside: raw rows only
        (timedelta(days=2), 0.0, 47.9, True),
    ],
)
def test_bucket_queries_read_the_aggregates_and_agree_with_the_raw_readings(
    timescale_url: str, width: timedelta, since_h: float, until_h: float, reads_aggregate: bool
) -> None:
    migrate(timescale_url)
    # Beyond everything materialised so far: the first day is refreshed below, the second is past
    # the aggregates' watermark (real-time aggregation). A reading arriving late, below the
    # watermark, would show at the next refresh (the module docstring says so).
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=10)
    device = f"TS-B{uuid.uuid4().hex[:6]}"
    with psycopg.connect(timescale_url, autocommit=True) as conn:
        patient = _patient_with_device(conn, device)
        _insert(conn, device, patient,
                [(start + timedelta(minutes=7 * i), 55.0 + (i * 37) % 50 + 0.25) for i in range(420)])
        # half the period materialised, the rest computed at query time (real-time aggregation)
        for view in (timescale.HOURLY_VIEW, timescale.DAILY_VIEW):
            conn.execute(f"CALL refresh_continuous_aggregate('{view}', %s, %s)",
                         (start, start + timedelta(days=1)))
        window = {"patient_id": patient, "metrics": ["heart_rate"],
                  "since": start + timedelta(hours=since_h), "until": start + timedelta(hours=until_h),
                  "width": width}
        raw = raw_buckets(conn, **window)  # type: ignore[arg-type]
        from_aggregate = timescale.aggregate_buckets(conn, **window)  # type: ignore[arg-type]
        assert (from_aggregate is not None) is reads_aggregate
        got = query_buckets(conn, **window)  # type: ignore[arg-type]
        assert raw, "the window holds readings"
        assert [(b["bucket_start"], b["min"], b["max"], b["count"]) for b in got] == [
            (b["bucket_start"], b["min"], b["max"], b["count"]) for b in raw
        ]
        assert [b["avg"] for b in got] == pytest.approx([b["avg"] for b in raw], rel=1e-12)


def test_a_width_no_aggregate_serves_reads_the_raw_readings(timescale_url: str) -> None:
    migrate(timescale_url)
    with psycopg.connect(timescale_url, autocommit=True) as conn:
        since = datetime(2026, 11, 20, tzinfo=UTC)
        for width in (timedelta(minutes=15), timedelta(minutes=90)):
            assert timescale.aggregate_buckets(
                conn, patient_id=uuid.uuid4(), metrics=["heart_rate"], since=since,
                until=since + timedelta(days=2), width=width,
            ) is None

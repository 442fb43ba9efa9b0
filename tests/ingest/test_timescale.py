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
from ingest.store.readings import query_buckets
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

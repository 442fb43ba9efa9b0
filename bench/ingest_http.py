"""HTTP ingest throughput against raw COPY into the same table, measured in the same run.

    .venv/bin/python bench/ingest_http.py [--readings 200000] [--batch 1000] [--clients 2]

Starts `rpm-ingest serve` as a subprocess on a fresh database (real uvicorn, real PostgreSQL at
RPM_BENCH_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/postgres), posts batches of
readings over HTTP from concurrent clients, then measures on fresh databases:
  - raw COPY of the same rows straight into `readings` (the ceiling; measured before and after
    the pipeline, and averaged),
  - naive per-reading INSERT ... ON CONFLICT with one commit per batch (the anti-baseline).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

# The repository, not bench/ (where fhir_export.py would shadow the package of that name).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._support import fresh_database  # noqa: E402
from ingest.store.tokens import create_token  # noqa: E402

START = datetime(2026, 1, 1, tzinfo=UTC)


def prepare(url: str, devices: int) -> tuple[str, Any]:
    with psycopg.connect(url) as conn:
        patient = conn.execute(
            "INSERT INTO patients (clinic_id, mrn, display_name) VALUES ('default', 'B', 'Bench')"
            " RETURNING id"
        ).fetchone()
        assert patient is not None
        for d in range(devices):
            conn.execute("INSERT INTO devices (id, clinic_id, type) VALUES (%s, 'default', 'x')", (f"D{d}",))
            conn.execute(
                "INSERT INTO device_assignments (device_id, patient_id, since) VALUES (%s, %s, %s)",
                (f"D{d}", patient[0], START - timedelta(days=1)),
            )
        token, _ = create_token(conn, name="bench", role="admin")
    return token, patient[0]


def batches(total: int, size: int, devices: int) -> list[tuple[str, list[dict[str, Any]]]]:
    out = []
    for b in range(total // size):
        device = f"D{b % devices}"
        base = START + timedelta(seconds=(b // devices) * size)
        out.append(
            (
                device,
                [
                    {
                        "metric": "heart_rate",
                        "value": 60 + (i % 40),
                        "unit": "/min",
                        "measured_at": (base + timedelta(seconds=i)).isoformat(),
                    }
                    for i in range(size)
                ],
            )
        )
    return out


def wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("service exited during start-up")
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("service did not start")


def bench_http(total: int, size: int, clients: int) -> tuple[float, list[float]]:
    devices = max(clients, 4)
    with fresh_database() as url:
        token, _ = prepare(url, devices)
        work = batches(total, size, devices)
        port = 18000 + os.getpid() % 1000
        env = {
            **os.environ,
            "RPM_DATABASE_URL": url,
            "RPM_HTTP_PORT": str(port),
            "RPM_MQTT_ENABLED": "false",
            "RPM_MQTT_URL": "mqtt://127.0.0.1:1883",
            "RPM_LOG_LEVEL": "WARNING",
            "RPM_DB_POOL_MAX": str(clients + 2),
        }
        proc = subprocess.Popen([sys.executable, "-m", "ingest", "serve"], env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, proc)
            latencies: list[float] = []
            lock = threading.Lock()

            # Bodies are encoded before the clock starts: the clients share the machine with the
            # service, and what is measured is the service.
            bodies = [
                (json.dumps({"device_id": device, "readings": readings}).encode(), len(readings))
                for device, readings in work
            ]
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

            def worker(mine: list[tuple[bytes, int]]) -> None:
                with httpx.Client(base_url=base, headers=headers, timeout=60) as c:
                    for body, count in mine:
                        t0 = time.perf_counter()
                        r = c.post("/v1/readings", content=body)
                        r.raise_for_status()
                        assert r.json()["accepted"] == count, r.text
                        with lock:
                            latencies.append(time.perf_counter() - t0)

            threads = [threading.Thread(target=worker, args=(bodies[i::clients],)) for i in range(clients)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - t0
            with psycopg.connect(url) as conn:
                row = conn.execute("SELECT count(*) FROM readings").fetchone()
                assert row is not None and row[0] == len(work) * size, row
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return len(work) * size / elapsed, latencies


def rows_for(work: list[tuple[str, list[dict[str, Any]]]], patient: Any) -> list[list[tuple[Any, ...]]]:
    return [
        [
            (
                d,
                "heart_rate",
                datetime.fromisoformat(r["measured_at"]),
                patient,
                float(r["value"]),
                "/min",
                float(r["value"]),
                "/min",
            )
            for r in readings
        ]
        for d, readings in work
    ]


def bench_copy(total: int, size: int) -> float:
    with fresh_database() as url:
        _, patient = prepare(url, 4)
        data = rows_for(batches(total, size, 4), patient)
        with psycopg.connect(url) as conn:
            t0 = time.perf_counter()
            for rows in data:
                with (
                    conn.cursor() as cur,
                    cur.copy(
                        "COPY readings (device_id, metric, measured_at, patient_id, value, unit,"
                        " original_value, original_unit) FROM STDIN"
                    ) as copy,
                ):
                    for row in rows:
                        copy.write_row(row)
                conn.commit()
            return sum(map(len, data)) / (time.perf_counter() - t0)


def bench_naive(total: int, size: int) -> float:
    with fresh_database() as url:
        _, patient = prepare(url, 4)
        data = rows_for(batches(total, size, 4), patient)
        with psycopg.connect(url) as conn:
            t0 = time.perf_counter()
            for rows in data:
                for row in rows:
                    conn.execute(
                        "INSERT INTO readings (device_id, metric, measured_at, patient_id, value, unit,"
                        " original_value, original_unit) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)"
                        " ON CONFLICT DO NOTHING",
                        row,
                    )
                conn.commit()
            return sum(map(len, data)) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readings", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=2)
    args = parser.parse_args()
    # The ceiling is measured before and after the pipeline and averaged: on a shared machine one
    # short measurement can land in a slow or a fast moment.
    copy_before = bench_copy(args.readings, args.batch)
    naive_rate = bench_naive(min(args.readings, 50_000), args.batch)
    http_rate, lat = bench_http(args.readings, args.batch, args.clients)
    copy_after = bench_copy(args.readings, args.batch)
    copy_rate = (copy_before + copy_after) / 2
    lat.sort()
    print(
        f"readings: {args.readings}, batch: {args.batch}, HTTP clients: {args.clients},"
        f" cores: {os.cpu_count()}"
    )
    print(f"{'path':<44}{'readings/s':>12}{'vs COPY':>10}")
    print(f"{'raw COPY into readings (ceiling), mean':<44}{copy_rate:>12,.0f}{1:>10.0%}")
    print(f"{'  measured before / after':<44}{copy_before:>12,.0f}{copy_after:>10,.0f}")
    print(f"{'HTTP POST /v1/readings, full pipeline':<44}{http_rate:>12,.0f}{http_rate / copy_rate:>10.0%}")
    print(
        f"{'naive INSERT per reading (anti-baseline)':<44}{naive_rate:>12,.0f}{naive_rate / copy_rate:>10.0%}"
    )
    print(
        f"HTTP batch latency p50 {statistics.median(lat) * 1000:.1f} ms, "
        f"p99 {lat[int(len(lat) * 0.99) - 1] * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()

"""Time of the month's RPM billing report, and the shape of its counting query's plan.

    .venv/bin/python bench/billing.py [--patients 5000] [--days 30] [--per-day 5] [--runs 5]
                                      [--ingest-batches 0] [--ingest-batch 1000]

A fresh database gets one clinic (America/New_York), --patients patients with an episode each,
starting on a day spread over the 30 days before the month so that every patient's first
period ends in the month (2026-03), --days days of readings from the start, --per-day readings
at random times on each day (a day is skipped one time in five, so day counts vary), and two
clinician time entries per patient. Then the report of the whole clinic for the month is built
--runs times the way ``GET /v1/billing`` builds it (the counting query, which counts from the
days with readings, ``reading_days``, filled here from the readings as the ingest hook fills it;
the minutes query; the rules): the median and the best time are printed, then the counting
query's plan (EXPLAIN ANALYZE) as evidence of its shape. With --ingest-batches N it then
measures what the hook that records the days with readings adds to each ingest batch
(``hook_cost``).

PostgreSQL at RPM_BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres);
the database it creates is dropped at the end. Besides wall time it prints the CPU time the
PostgreSQL backend spent (read from /proc: the server must be local), which a loaded machine does
not inflate, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._support import fresh_database  # noqa: E402
from ingest.billing.months import parse_month  # noqa: E402
from ingest.billing.queries import explain_periods  # noqa: E402
from ingest.billing.reading_days import ReadingDaysWriter  # noqa: E402
from ingest.billing.report import build_report, report_csv  # noqa: E402
from ingest.pipeline import Envelope, Pipeline  # noqa: E402
from ingest.store import roster  # noqa: E402
from ingest.store.readings import prepare_session  # noqa: E402

CLINIC = "bench"
TZ = "America/New_York"
MONTH = "2026-03"


def populate(conn: psycopg.Connection[tuple[Any, ...]], patients: int, days: int, per_day: int) -> int:
    conn.execute("INSERT INTO clinics (id, name, timezone) VALUES (%s, 'Bench clinic', %s)", (CLINIC, TZ))
    conn.execute(
        "INSERT INTO patients (clinic_id, mrn, display_name)"
        " SELECT %s, 'MRN' || lpad(n::text, 6, '0'), 'Patient ' || n FROM generate_series(1, %s) n",
        (CLINIC, patients),
    )
    # Episodes start at 08:00 local on 2026-02-01 ... 2026-03-02 (a 30-day spread).
    conn.execute(
        "INSERT INTO monitoring_episodes (patient_id, started_at, started_by)"
        " SELECT id, ((date '2026-02-01' + (row_number() OVER (ORDER BY mrn) %% 30)::int)"
        "             + time '08:00') AT TIME ZONE %s, 'explicit' FROM patients WHERE clinic_id = %s",
        (TZ, CLINIC),
    )
    conn.execute(
        "INSERT INTO readings (device_id, metric, measured_at, patient_id, value, unit,"
        " original_value, original_unit)"
        " SELECT 'dev-' || e.patient_id, 'heart_rate',"
        "   e.started_at + d * interval '1 day' + (r * 3 + random() * 2.9) * interval '1 hour',"
        "   e.patient_id, 70, '/min', 70, '/min'"
        " FROM monitoring_episodes e"
        " CROSS JOIN generate_series(0, %s - 1) d"
        " CROSS JOIN generate_series(0, %s - 1) r"
        " WHERE hashtext(e.patient_id::text || d::text) %% 5 <> 0",
        (days, per_day),
    )
    conn.execute(
        "INSERT INTO clinician_time (patient_id, minutes, interactive, performed_at, author_name)"
        " SELECT e.patient_id, 5 + abs(k * 7 + hashtext(e.patient_id::text)) % 20, k = 1,"
        "        timestamptz '2026-03-10 15:00Z' + k * interval '9 days', 'bench'"
        " FROM monitoring_episodes e CROSS JOIN generate_series(1, 2) k"
    )
    # The days with readings, as the ingest hook writes them (rows inserted here bypass it); the
    # same statement rebuilds a clinic whose time zone changes.
    conn.execute("SELECT billing_rebuild_reading_days(%s)", (CLINIC,))
    conn.execute("VACUUM ANALYZE")  # as autovacuum leaves a month of readings
    row = conn.execute("SELECT count(*) FROM readings").fetchone()
    assert row is not None
    return int(row[0])


def backend_pid(conn: psycopg.Connection[tuple[Any, ...]]) -> int:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(str(row[0]))


def backend_cpu_s(pid: int) -> float:
    """CPU seconds the PostgreSQL backend has used (user + system, from /proc on a local server;
    0 where /proc cannot tell). On a shared, loaded machine this is the figure that does not
    depend on what else runs: wall time does."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def hook_cost(url: str, batches: int, size: int, patients: int) -> None:
    """The ingest cost of the hook that records days with readings: ``batches`` batches of
    ``size`` new heart-rate readings (``size / patients`` per patient, later instants each batch,
    so every batch widens each patient's day: an update per patient, the hook's dearest case) go
    through the pipeline, each in its own transaction; the hook runs after the pipeline's own
    work, timed apart. Prints medians per batch: the pipeline without the hook, the hook."""
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO clinics (id, name, timezone) VALUES ('ingest', 'Ingest', %s)", (TZ,))
        for n in range(patients):
            pid = roster.create_patient(
                conn, clinic_id="ingest", mrn=f"I{n}", display_name=f"I {n}", fhir_patient_id=None
            )["id"]
            roster.create_device(
                conn,
                device_id=f"i-{n}",
                clinic_id="ingest",
                type_="hr",
                manufacturer=None,
                model=None,
                serial=None,
            )
            roster.assign_device(conn, device_id=f"i-{n}", patient_id=pid, since=now - timedelta(days=1))
    pipeline, hook = Pipeline(), ReadingDaysWriter()
    per = max(1, size // patients)
    base_ms: list[float] = []
    hook_ms: list[float] = []
    hook_cpu: list[float] = []
    with psycopg.connect(url) as conn:
        prepare_session(conn)
        backend = backend_pid(conn)
        for b in range(batches):
            envelopes = [
                Envelope(
                    "http",
                    json.dumps({"readings": [
                        {"metric": "heart_rate", "value": 70, "unit": "/min",
                         "measured_at": (now + timedelta(seconds=b * per + k)).isoformat()}
                        for k in range(per)
                    ]}).encode(),
                    now,
                    device_id=f"i-{n}",
                )
                for n in range(patients)
            ]  # fmt: skip
            t0 = time.perf_counter()
            with conn.transaction():
                outcomes = pipeline.process(conn, envelopes, collect=[])
                assert sum(o.accepted for o in outcomes) == per * patients
                t1, c1 = time.perf_counter(), backend_cpu_s(backend)
                hook(conn, [])
                t2, c2 = time.perf_counter(), backend_cpu_s(backend)
            base_ms.append((t1 - t0 + time.perf_counter() - t2) * 1000)
            hook_ms.append((t2 - t1) * 1000)
            hook_cpu.append((c2 - c1) * 1000)
        days = conn.execute(
            "SELECT count(*) FROM reading_days d JOIN patients p ON p.id = d.patient_id"
            " WHERE p.clinic_id = 'ingest'"
        ).fetchone()
    print(
        f"ingest: {batches} batches of {per * patients} readings ({patients} patients): pipeline without"
        f" the hook median {statistics.median(base_ms):.1f} ms a batch; the hook median"
        f" {statistics.median(hook_ms):.2f} ms (p90 {sorted(hook_ms)[int(len(hook_ms) * 0.9)]:.2f} ms,"
        f" backend CPU {statistics.mean(hook_cpu):.2f} ms a batch),"
        f" {statistics.median(hook_ms) / statistics.median(base_ms):.1%} of the batch;"
        f" {days[0] if days else 0} day rows; load average {os.getloadavg()[0]:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-day", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ingest-batches", type=int, default=0, help="also measure the ingest hook (0 = no)")
    parser.add_argument("--ingest-batch", type=int, default=1000, help="readings per ingest batch")
    args = parser.parse_args()
    month = parse_month(MONTH)
    with fresh_database("rpm_bench_billing") as url, psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        count = populate(conn, args.patients, args.days, args.per_day)
        took = time.perf_counter() - started
        print(f"stored {count:,} readings of {args.patients:,} patients in {took:.1f} s")
        timings: list[float] = []
        cpu: list[float] = []
        own: list[float] = []
        backend = backend_pid(conn)
        report = None
        for _ in range(args.runs):
            t0, c0, p0 = time.perf_counter(), backend_cpu_s(backend), time.process_time()
            report = build_report(conn, clinic_id=CLINIC, timezone=TZ, month=month, today=date(2026, 4, 1))
            timings.append(time.perf_counter() - t0)
            cpu.append(backend_cpu_s(backend) - c0)
            own.append(time.process_time() - p0)
        assert report is not None
        t0 = time.perf_counter()
        csv_text = report_csv(report)
        csv_s = time.perf_counter() - t0
        codes: dict[str, int] = {}
        for p in report.patients:
            for c in p.codes:
                codes[c.code] = codes.get(c.code, 0) + 1
        plan = explain_periods(conn, CLINIC, TZ, month)
        if args.ingest_batches:
            hook_cost(url, args.ingest_batches, args.ingest_batch, patients=200)
    median_ms, best_ms = statistics.median(timings) * 1000, min(timings) * 1000
    print(
        f"report {MONTH}: {len(report.patients):,} patients, median {median_ms:.0f} ms,"
        f" best {best_ms:.0f} ms over {args.runs} runs (PostgreSQL backend CPU: median"
        f" {statistics.median(cpu) * 1000:.0f} ms, this process: {statistics.median(own) * 1000:.0f} ms);"
        f" CSV {csv_s * 1000:.0f} ms"
        f" ({csv_text.count(chr(10)) - 1:,} rows); load average {os.getloadavg()[0]:.1f}"
        f" on {os.cpu_count()} CPUs"
    )
    print("codes:", json.dumps(dict(sorted(codes.items()))))
    print("plan of the counting query (EXPLAIN ANALYZE, costs off):")
    for line in plan:
        print("  " + line)


if __name__ == "__main__":
    main()

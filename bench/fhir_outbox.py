"""FHIR export through the PostgreSQL outbox: what it costs ingest, and how fast it drains.

    .venv/bin/python bench/fhir_outbox.py [--readings 20000] [--deliver 5000] [--bundle 100]

Reports, in one run, on fresh databases (RPM_BENCH_DATABASE_URL, default
postgresql://postgres@127.0.0.1:5432/postgres):
  * ingest: readings/s through the real pipeline in one process, without and with the outbox hook
    (same batches; the difference is what writing outbox rows costs the ingest transaction);
  * outbox alone: rows/s claimed, mapped and recorded as sent by 1 and 2 workers against a transport
    that answers at once (the database's share of the export, no HTTP);
  * delivery: Observations/s from the outbox to the local FHIR server (tests/fhir_server) in bundles
    of --bundle, 1 and 2 workers, next to the server's own time inside those transactions.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
# bench/fhir_export.py would shadow the package: drop bench/ from the path, add the repository root.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, str(ROOT))

from bench._support import enrol_patient, fresh_database  # noqa: E402
from fhir_export.auth import NoAuth  # noqa: E402
from fhir_export.bundle import EntryOutcome  # noqa: E402
from fhir_export.client import FhirClient, RetryPolicy, build_http_client  # noqa: E402
from fhir_export.mapping import ObservationMapper  # noqa: E402
from fhir_export.table import build_table  # noqa: E402
from fhir_export.worker import ExportWorker, Transport  # noqa: E402
from ingest.db.pool import open_pool  # noqa: E402
from ingest.export.fhir_devices import DeviceRegistry  # noqa: E402
from ingest.export.outbox import OutboxWriter, PgOutbox  # noqa: E402
from ingest.pipeline import Envelope, Pipeline  # noqa: E402
from ingest.store.readings import prepare_session  # noqa: E402
from tests.support.fhir_test_server import run_fhir_server  # noqa: E402

START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=5)
DEVICES = 20
PATIENT = "bench-patient"


def prepare(url: str) -> None:
    enrol_patient(url, fhir_patient_id=PATIENT, devices=DEVICES, since=START)


def envelopes(n: int, per_message: int = 10) -> list[Envelope]:
    """``n`` readings: a heart rate and (every 4th time) a blood-pressure panel, per device."""
    out: list[Envelope] = []
    i = 0
    while i < n:
        device = f"bench-{(i // per_message) % DEVICES:03d}"
        readings: list[dict[str, Any]] = []
        while len(readings) < per_message and i < n:
            at = (START + timedelta(seconds=i)).isoformat()
            if i % 4 == 0 and len(readings) + 2 <= per_message:
                readings.append(
                    {"metric": "systolic_bp", "value": 120 + i % 20, "unit": "mm[Hg]", "measured_at": at}
                )
                readings.append({"metric": "diastolic_bp", "value": 80, "unit": "mm[Hg]", "measured_at": at})
                i += 2
            else:
                readings.append(
                    {"metric": "heart_rate", "value": 60 + i % 40, "unit": "/min", "measured_at": at}
                )
                i += 1
        raw = json.dumps({"readings": readings}).encode()
        out.append(Envelope(source="bench", raw=raw, received_at=datetime.now(UTC), device_id=device))
    return out


def bench_ingest(url: str, batches: list[list[Envelope]], with_outbox: bool) -> float:
    hooks = [OutboxWriter(build_table())] if with_outbox else []
    pipeline = Pipeline(hooks=hooks)
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        for batch in batches:
            with conn.transaction():
                pipeline.process(conn, batch, collect=[])  # the readings are all valid: no dead letters
        return time.perf_counter() - started


class Instant:
    """A transport that answers every entry 201 at once: the outbox's own cost, no HTTP."""

    def transaction(self, bundle: dict[str, object]) -> list[EntryOutcome]:
        entries = bundle["entry"]
        assert isinstance(entries, list)
        return [EntryOutcome(i, 201, f"Observation/{uuid.uuid4()}") for i in range(len(entries))]


def drain(url: str, transport_for: Any, workers: int, bundle: int) -> float:
    mapper = ObservationMapper(build_table())
    pool = open_pool(url, min_size=workers, max_size=workers * 2 + 1, prepare=prepare_session)
    try:

        def work(n: int) -> None:
            transport: Transport = transport_for(pool, mapper)
            worker = ExportWorker(PgOutbox(pool, worker=f"bench-{n}"), transport, mapper, bundle_size=bundle)
            while worker.run_once():
                pass

        threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.perf_counter() - started
    finally:
        pool.close()


def sent_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FILTER (WHERE status = 'sent'), count(*) FROM outbox").fetchone()
    assert row is not None and row[0] == row[1], f"only {row} rows sent"
    return int(row[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--readings", type=int, default=20_000, help="readings to ingest")
    parser.add_argument("--deliver", type=int, default=5_000, help="readings to deliver to the FHIR server")
    parser.add_argument("--bundle", type=int, default=100)
    args = parser.parse_args()

    messages = envelopes(args.readings)
    batches = [messages[i : i + 50] for i in range(0, len(messages), 50)]  # 500 readings a batch
    for with_outbox in (False, True):
        with fresh_database() as url:
            prepare(url)
            seconds = bench_ingest(url, batches, with_outbox)
            label = "with outbox hook" if with_outbox else "without outbox  "
            rate = args.readings / seconds
            print(f"ingest {label}:      {rate:>10,.0f} readings/s  ({args.readings:,} in {seconds:.2f}s)")
            if with_outbox:
                for workers in (1, 2):
                    with psycopg.connect(url) as conn:
                        conn.execute("UPDATE outbox SET status = 'pending', sent_at = NULL")
                    seconds = drain(url, lambda pool, mapper: Instant(), workers, args.bundle)
                    rows = sent_rows(url)
                    print(f"outbox alone, {workers} worker(s):  {rows / seconds:>10,.0f} rows/s"
                          f"  ({rows:,} claimed, mapped, recorded in {seconds:.2f}s; no HTTP)")  # fmt: skip

    with run_fhir_server() as server, build_http_client() as http:
        deliver(server, http, 1000, args.bundle, 1)  # warm the server up (JIT), then start clean
        for workers in (1, 2):
            seconds, recorder = deliver(server, http, args.deliver, args.bundle, workers)
            stats = server.stats()
            observations = stats["entries_created"] - DEVICES
            raw_s = replay(server, recorder)
            print(
                f"delivered, {workers} worker(s):     {observations / seconds:>10,.0f} Observations/s"
                f"  ({observations:,} in {seconds:.2f}s, {stats['transactions'] - DEVICES} bundles of"
                f" {args.bundle}); server alone, same bundles pre-encoded: {observations / raw_s:,.0f}/s;"
                f" export / server = {raw_s / seconds:.2f}"
            )


class Recorder:
    """Keeps the bundles the export sends (Devices apart), to replay them as the reference."""

    def __init__(self, client: FhirClient) -> None:
        self.client = client
        self.devices: list[dict[str, Any]] = []
        self.bundles: list[bytes] = []
        self._lock = threading.Lock()

    def transaction(self, bundle: dict[str, Any]) -> list[EntryOutcome]:
        outcomes = self.client.transaction(bundle)
        entries = bundle["entry"]
        with self._lock:
            if entries[0]["resource"]["resourceType"] == "Device":
                for entry, outcome in zip(entries, outcomes, strict=True):
                    assert outcome.reference is not None
                    self.devices.append({**entry["resource"], "id": outcome.reference.split("/")[1]})
            else:
                self.bundles.append(json.dumps(bundle, separators=(",", ":")).encode())
        return outcomes


def deliver(server: Any, http: Any, n: int, bundle: int, workers: int) -> tuple[float, Recorder]:
    server.reset()
    server.put({"resourceType": "Patient", "id": PATIENT})
    recorder = Recorder(FhirClient(http, server.base_url, NoAuth(), retry=RetryPolicy(attempts=1)))
    with fresh_database() as url:
        prepare(url)
        messages = envelopes(n)
        bench_ingest(url, [messages[i : i + 50] for i in range(0, len(messages), 50)], True)

        def registry(pool: Any, mapper: ObservationMapper) -> Transport:
            system = mapper.device_system
            return DeviceRegistry(recorder, pool, base_url=server.base_url, device_system=system)

        seconds = drain(url, registry, workers, bundle)
        sent_rows(url)
    return seconds, recorder


def replay(server: Any, recorder: Recorder) -> float:
    """The same Observation bundles, pre-encoded, posted back to back to a fresh server."""
    server.reset()
    server.put({"resourceType": "Patient", "id": PATIENT})
    for device in recorder.devices:
        server.put(device)
    headers = {"Content-Type": "application/fhir+json"}
    with httpx.Client(timeout=120) as raw:
        started = time.perf_counter()
        for payload in recorder.bundles:
            raw.post(server.base_url, content=payload, headers=headers).raise_for_status()
        return time.perf_counter() - started


if __name__ == "__main__":
    main()

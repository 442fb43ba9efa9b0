"""ECG strips: how many strips per second the service ingests, against a raw INSERT of the same
rows in the same run.

    .venv/bin/python bench/ecg.py [--strips 300] [--clients 2] [--section ingest|dicom]

Two strip shapes: a 30 s single-lead strip at 300 Hz (a card recorder, ~40 kB of JSON) and a
60 s six-lead strip at 500 Hz (a patch, ~1.4 MB of JSON, near the 4 MiB message limit). For each,
on fresh databases (real PostgreSQL at RPM_BENCH_DATABASE_URL):
  - parse: JSON decode + contract validation to an EcgStrip (no I/O);
  - pipeline: ``Services.ingest`` in this process, one strip per transaction (parse, attribute,
    store, outbox rows for FHIR and DICOM), sequentially;
  - http: ``POST /v1/readings`` to `rpm-ingest serve` (a subprocess) from ``--clients`` clients,
    one strip per request;
  - raw insert: the same rows (samples already encoded) straight into ``ecg_strips``, one commit
    each: the ceiling.
The ``dicom`` section: DICOM objects built alone (pydicom, no I/O; this process's CPU ms and the
wall-clock ms per object for a 30 s single-lead, a 60 s six-lead and a 10 s 12-lead strip, --strips
of each), and STOW-RS to a local Orthanc started by the run (DICOMweb plugin), --strips / 3 new
single-lead instances each: Orthanc's own rate (pre-built objects in raw requests), the export's
client with pre-built objects, and building + storing, taken in turn instance by instance; then
the whole delivery path (outbox claim, strip load, build, STOW-RS, row marked sent).
Sections are functions of ``SECTIONS`` (``--section`` picks; all by default).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg

# The repository, not bench/ (where fhir_export.py would shadow the package of that name).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._support import fresh_database  # noqa: E402
from devices.ecg import LEAD_NAMES, EcgStrip, encode_samples, strip_to_wire  # noqa: E402
from devices.ecg_synth import synthetic_strip  # noqa: E402
from devices.message import decode_message, parse_message  # noqa: E402
from dicom_export import ClinicRef, PatientRef, build_object  # noqa: E402
from dicom_export.stow import StowClient  # noqa: E402
from ingest.db.pool import open_pool  # noqa: E402
from ingest.dicom.reader import DicomJob, dicom_reader  # noqa: E402
from ingest.dicom.sender import DicomSender  # noqa: E402
from ingest.ecg.outbox import StripOutboxWriter  # noqa: E402
from ingest.ecg.store import insert_strip  # noqa: E402
from ingest.export.destinations import DICOM  # noqa: E402
from ingest.export.outbox import NewItem, PgOutbox, enqueue_items  # noqa: E402
from ingest.limits import Limits  # noqa: E402
from ingest.metrics import Metrics  # noqa: E402
from ingest.pipeline import Envelope, Pipeline  # noqa: E402
from ingest.services import Services  # noqa: E402
from ingest.settings import Settings  # noqa: E402
from ingest.store.readings import prepare_session  # noqa: E402
from ingest.store.tokens import create_token  # noqa: E402
from tests.support.orthanc import Orthanc  # noqa: E402

START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
SHAPES: dict[str, dict[str, Any]] = {
    "30 s, 1 lead, 300 Hz": {"leads": ("I",), "sample_rate_hz": 300, "duration_s": 30.0},
    "60 s, 6 leads, 500 Hz": {"leads": LEAD_NAMES[:6], "sample_rate_hz": 500, "duration_s": 60.0},
}
DEVICES = 8


def bodies(shape: dict[str, Any], count: int) -> list[tuple[str, bytes]]:
    """(device, JSON body) per strip: a few distinct waveforms, each strip its own time."""
    templates = [
        strip_to_wire(synthetic_strip("T", START, rhythm=r, seed=i, **shape))
        for i, r in enumerate(("sinus", "af", "sinus", "af"))
    ]
    out = []
    for n in range(count):
        wire = dict(templates[n % len(templates)])
        device = f"E{n % DEVICES}"
        wire["device_id"] = device
        wire["measured_at"] = (START + timedelta(minutes=n)).isoformat().replace("+00:00", "Z")
        out.append((device, json.dumps({"device_id": device, "readings": [wire]}).encode()))
    return out


def prepare(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "INSERT INTO patients (clinic_id, mrn, display_name) VALUES ('default', 'B', 'Bench')"
            " RETURNING id"
        ).fetchone()
        assert row is not None
        for d in range(DEVICES):
            conn.execute(
                "INSERT INTO devices (id, clinic_id, type) VALUES (%s, 'default', 'ecg')", (f"E{d}",)
            )
            conn.execute(
                "INSERT INTO device_assignments (device_id, patient_id, since) VALUES (%s, %s, %s)",
                (f"E{d}", row[0], START - timedelta(days=1)),
            )
        token, _ = create_token(conn, name="bench", role="admin")
    return token


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def bench_parse(work: list[tuple[str, bytes]]) -> float:
    now = datetime.now(UTC)
    started = time.perf_counter()
    for device, raw in work:
        parsed = parse_message(decode_message(raw), device_id=device, now=now)
        assert len(parsed.strips) == 1
    return rate(len(work), time.perf_counter() - started)


def bench_pipeline(work: list[tuple[str, bytes]]) -> float:
    with fresh_database() as url:
        prepare(url)
        settings = Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
        pool = open_pool(url, min_size=1, max_size=2, name="bench", prepare=prepare_session)
        try:
            limits = Limits.from_settings(settings)
            pipeline = Pipeline(rules=limits.message, strip_hooks=[StripOutboxWriter(("fhir", "dicom"))])
            services = Services(
                settings=settings, pool=pool, pipeline=pipeline, metrics=Metrics(), limits=limits
            )
            now = datetime.now(UTC)
            started = time.perf_counter()
            for device, raw in work:
                env = Envelope(source="bench", raw=raw, received_at=now, device_id=device)
                [outcome] = services.ingest("bench", [env])
                assert outcome.accepted == 1, outcome
            elapsed = time.perf_counter() - started
        finally:
            pool.close()
    return rate(len(work), elapsed)


def bench_http(work: list[tuple[str, bytes]], clients: int) -> tuple[float, float]:
    """(strips/s, median request latency in ms)."""
    with fresh_database() as url:
        token = prepare(url)
        port = 19000 + os.getpid() % 1000
        env = {
            **os.environ,
            "RPM_DATABASE_URL": url,
            "RPM_HTTP_PORT": str(port),
            "RPM_MQTT_ENABLED": "false",
            "RPM_MQTT_URL": "mqtt://127.0.0.1:1883",
            "RPM_LOG_LEVEL": "WARNING",
            "RPM_RATE_LIMIT_PER_MINUTE": "0",
            "RPM_DB_POOL_MAX": str(clients + 2),
        }
        proc = subprocess.Popen([sys.executable, "-m", "ingest", "serve"], env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, proc)
            latencies: list[float] = []
            lock = threading.Lock()
            shares = [work[i::clients] for i in range(clients)]

            def run(share: list[tuple[str, bytes]]) -> None:
                headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
                with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
                    for _, body in share:
                        t0 = time.perf_counter()
                        r = client.post("/v1/readings", content=body)
                        took = time.perf_counter() - t0
                        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
                        with lock:
                            latencies.append(took)

            threads = [threading.Thread(target=run, args=(share,)) for share in shares]
            started = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - started
        finally:
            proc.terminate()
            proc.wait(30)
    return rate(len(work), elapsed), statistics.median(latencies) * 1000


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


def bench_raw(work: list[tuple[str, bytes]]) -> float:
    """The ceiling: the rows the pipeline writes, encoded beforehand, one INSERT + commit each."""
    now = datetime.now(UTC)
    rows = []
    for device, raw in work:
        [(_, strip)] = parse_message(decode_message(raw), device_id=device, now=now).strips
        rows.append(
            (
                strip.id,
                strip.device_id,
                strip.measured_at,
                strip.sample_rate_hz,
                list(strip.lead_names),
                strip.sample_count,
                encode_samples(strip),
                strip.interpretation,
            )
        )
    with fresh_database() as url:
        prepare(url)
        with psycopg.connect(url) as conn:
            patient = conn.execute("SELECT id FROM patients").fetchone()
            assert patient is not None
            started = time.perf_counter()
            for row in rows:
                with conn.transaction():
                    conn.execute(
                        "INSERT INTO ecg_strips (id, clinic_id, patient_id, device_id, measured_at,"
                        " sample_rate_hz, leads, sample_count, samples, interpretation)"
                        " VALUES (%s, 'default', %s, %s, %s, %s, %s, %s, %s, %s)",
                        (row[0], patient[0], *row[1:]),
                    )
            elapsed = time.perf_counter() - started
    return rate(len(rows), elapsed)


def ingest_section(args: argparse.Namespace) -> dict[str, Any]:
    """Strips/s ingested, per shape: parse alone, the pipeline, HTTP, and raw INSERT."""
    results: dict[str, Any] = {}
    for name, shape in SHAPES.items():
        count = args.strips if shape["duration_s"] <= 30 else max(20, args.strips // 5)
        work = bodies(shape, count)
        size = statistics.mean(len(body) for _, body in work)
        result = {
            "strips": count,
            "json_kib_per_strip": round(size / 1024, 1),
            "parse_per_s": round(bench_parse(work), 1),
            "pipeline_per_s": round(bench_pipeline(work), 1),
        }
        http_rate, latency_ms = bench_http(work, args.clients)
        result["http_per_s"] = round(http_rate, 1)
        result["http_median_ms"] = round(latency_ms, 1)
        result["raw_insert_per_s"] = round(bench_raw(work), 1)
        results[name] = result
        print(f"{name}: {json.dumps(result)}", file=sys.stderr)  # noqa: T201
    return results


# --- DICOM: objects built alone, and STOW-RS to a local Orthanc against Orthanc's own rate

DICOM_PATIENT = PatientRef(id="00000000-0000-4000-8000-00000000be01", mrn="B", name="Bench")
DICOM_CLINIC = ClinicRef(id="default", name="Default clinic", timezone=ZoneInfo("Europe/Berlin"))
DICOM_SHAPES: dict[str, dict[str, Any]] = {
    "30 s, 1 lead, 500 Hz": {"leads": ("I",), "sample_rate_hz": 500, "duration_s": 30.0},
    "60 s, 6 leads, 500 Hz": {"leads": LEAD_NAMES[:6], "sample_rate_hz": 500, "duration_s": 60.0},
    "10 s, 12 leads, 500 Hz": {"leads": LEAD_NAMES, "sample_rate_hz": 500, "duration_s": 10.0},
}


def dicom_strips(count: int, device: str, **shape: Any) -> list[EcgStrip]:
    """``count`` strips a second apart (distinct UIDs) sharing one synthetic waveform."""
    base = synthetic_strip(device, START, **shape)
    return [replace(base, measured_at=START + timedelta(seconds=n)) for n in range(count)]


def bench_dicom_build(count: int) -> dict[str, Any]:
    """Objects built alone (pydicom, no I/O): CPU ms per object, median and best wall-clock ms,
    objects/s (wall clock)."""
    results: dict[str, Any] = {}
    for name, shape in DICOM_SHAPES.items():
        strip = dicom_strips(1, "E0", **shape)[0]
        build_object(strip, DICOM_PATIENT, DICOM_CLINIC)  # the shape's template, once
        times = []
        cpu_started = time.process_time()
        for _ in range(count):
            started = time.perf_counter()
            obj = build_object(strip, DICOM_PATIENT, DICOM_CLINIC)
            times.append(time.perf_counter() - started)
        cpu = time.process_time() - cpu_started
        results[name] = {
            "cpu_ms": round(cpu / count * 1000, 2),  # this process's CPU: what load on the machine hides
            "median_ms": round(statistics.median(times) * 1000, 2),
            "best_ms": round(min(times) * 1000, 2),
            "objects_per_s": round(rate(len(times), sum(times)), 1),
            "kib": round(len(obj.data) / 1024, 1),
        }
    return results


def stow_interleaved(http: httpx.Client, client: StowClient, count: int) -> dict[str, float]:
    """Three ways of storing ``count`` new single-lead instances each, taken in turn instance by
    instance so that the load on the machine falls on all three alike: Orthanc's own rate (a
    pre-built object in a raw STOW-RS request), the export's client with a pre-built object, and
    the export's client building the object first. Returns instances/s of each and our CPU ms."""
    shape = DICOM_SHAPES["30 s, 1 lead, 500 Hz"]
    raw = [build_object(s, DICOM_PATIENT, DICOM_CLINIC).data for s in dicom_strips(count, "E1", **shape)]
    prebuilt = [build_object(s, DICOM_PATIENT, DICOM_CLINIC) for s in dicom_strips(count, "E2", **shape)]
    to_build = dicom_strips(count, "E4", **shape)
    headers = {
        "Content-Type": 'multipart/related; type="application/dicom"; boundary=b0',
        "Accept": "application/dicom+json",
    }
    spent = {"raw": 0.0, "client": 0.0, "build_and_client": 0.0}
    cpu = 0.0
    for n in range(count):
        body = b"--b0\r\nContent-Type: application/dicom\r\n\r\n" + raw[n] + b"\r\n--b0--\r\n"
        t0 = time.perf_counter()
        http.post(f"{client.base_url}/studies", content=body, headers=headers).raise_for_status()
        t1 = time.perf_counter()
        client.store(prebuilt[n])
        t2, c2 = time.perf_counter(), time.process_time()
        client.store(build_object(to_build[n], DICOM_PATIENT, DICOM_CLINIC))
        t3, c3 = time.perf_counter(), time.process_time()
        spent["raw"] += t1 - t0
        spent["client"] += t2 - t1
        spent["build_and_client"] += t3 - t2
        cpu += c3 - c2
    return {**{k: rate(count, v) for k, v in spent.items()}, "build_and_client_cpu_ms": cpu / count * 1000}


def stow_delivery(client: StowClient, strips: list[EcgStrip]) -> float:
    """The DICOM export's whole path: outbox claim, strip load, build, STOW-RS, row marked sent."""
    with fresh_database() as db:
        prepare(db)
        pool = open_pool(db, min_size=1, max_size=2, name="bench", prepare=prepare_session)
        try:
            with pool.connection() as conn, conn.transaction():
                patient = conn.execute("SELECT id FROM patients").fetchone()
                assert patient is not None
                for strip in strips:
                    insert_strip(conn, strip, received_at=START)
                items = [
                    NewItem(patient[0], s.device_id, DICOM, "ecg", str(s.id), s.measured_at) for s in strips
                ]
                enqueue_items(conn, items)
            outbox: PgOutbox[DicomJob] = PgOutbox(
                pool, worker="bench", destination=DICOM, reader=dicom_reader
            )
            sender = DicomSender(outbox, client)
            started = time.perf_counter()
            while sender.run_once().claimed:
                pass
            elapsed = time.perf_counter() - started
            assert sender.stats.sent == len(strips), sender.stats
        finally:
            pool.close()
    return rate(len(strips), elapsed)


def dicom_section(args: argparse.Namespace) -> dict[str, Any]:
    """DICOM objects/s built alone, and STOW-RS to a local Orthanc (a process of this run, DICOMweb
    plugin) against Orthanc's own rate for the same single-lead 30 s objects."""
    results: dict[str, Any] = {"build": bench_dicom_build(args.strips)}
    print(f"DICOM build: {json.dumps(results['build'])}", file=sys.stderr)  # noqa: T201
    count = max(20, args.strips // 3)
    shape = DICOM_SHAPES["30 s, 1 lead, 500 Hz"]
    with (
        tempfile.TemporaryDirectory() as tmp,
        Orthanc(Path(tmp)) as orthanc,
        httpx.Client(timeout=60) as http,
    ):
        client = StowClient(http, orthanc.dicomweb_url)
        rates = stow_interleaved(http, client, count)
        stow = {
            "instances": count,
            "orthanc_raw_per_s": round(rates["raw"], 1),
            "client_prebuilt_per_s": round(rates["client"], 1),
            "build_and_stow_per_s": round(rates["build_and_client"], 1),
            "build_and_stow_cpu_ms": round(rates["build_and_client_cpu_ms"], 2),  # ours (Orthanc's apart)
            "delivery_path_per_s": round(stow_delivery(client, dicom_strips(count, "E3", **shape)), 1),
            "orthanc_holds": len(orthanc.instances()),
        }
    results["stow"] = stow
    print(f"DICOM STOW-RS: {json.dumps(stow)}", file=sys.stderr)  # noqa: T201
    return results


SECTIONS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "ingest": ingest_section,
    "dicom": dicom_section,  # DICOM objects built alone, STOW-RS against Orthanc's own rate
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--strips", type=int, default=300, help="strips per shape (the 60 s shape: a fifth)")
    parser.add_argument("--clients", type=int, default=2, help="concurrent HTTP clients")
    parser.add_argument(
        "--section",
        choices=sorted(SECTIONS),
        action="append",
        help="run only these sections (repeat); all by default",
    )
    args = parser.parse_args()
    report = {name: SECTIONS[name](args) for name in (args.section or SECTIONS)}
    print(json.dumps(report, indent=2))  # noqa: T201


if __name__ == "__main__":
    main()

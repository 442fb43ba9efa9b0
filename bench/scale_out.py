"""1 vs 2 vs 3 worker processes storing one ``mosquitto_pub -l`` burst.

    .venv/bin/python bench/scale_out.py [--messages 20000] [--workers 1,2,3] [--repeat 2]

Each run: a fresh database with one patient wearing one device, a private Mosquitto configured with
``deploy/mosquitto/mosquitto.conf``, ``rpm-ingest serve --workers N`` in one shared group (N = 1
runs a lone ``serve`` in the same group), then ``--messages`` QoS 1 heart-rate readings published
by ``mosquitto_pub -l`` from a file. The clock runs from the publisher's start until the database
holds every reading (polled every 20 ms), so the rate is publish -> committed for the whole burst.
Runs alternate (1, 2, 3, 1, 2, 3...) so a swing in machine load spreads over every setting;
the report gives each run and the best and worst per setting. CPU per process is read from
/proc at the end of each run (user + system seconds of the parent and its workers).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._support import fresh_database  # noqa: E402
from ingest.store import roster  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RPM_INGEST = Path(sys.executable).with_name("rpm-ingest")
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
DEVICE = "HR-SCALE-1"
PREFIX = "bench/rpm"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def mosquitto(directory: Path) -> Iterator[int]:
    port = free_port()
    conf = directory / "mosquitto.conf"
    conf.write_text(
        f"persistence true\npersistence_location {directory}/\nlog_dest file {directory}/mosquitto.log\n"
        f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        + (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    )
    if os.geteuid() == 0:
        conf.write_text("user root\n" + conf.read_text())
    proc = subprocess.Popen(
        [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("mosquitto did not start") from None
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def register(url: str) -> None:
    with psycopg.connect(url) as conn, conn.transaction():
        patient = roster.create_patient(
            conn, clinic_id="default", mrn="MRN-SCALE", display_name="Scale Out", fhir_patient_id=None
        )
        roster.create_device(
            conn, device_id=DEVICE, clinic_id="default", type_="heart_rate_monitor",
            manufacturer=None, model=None, serial=None,
        )  # fmt: skip
        roster.assign_device(
            conn, device_id=DEVICE, patient_id=patient["id"], since=datetime.now(UTC) - timedelta(days=2)
        )


def burst_file(path: Path, n: int) -> None:
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    with path.open("w") as f:
        for i in range(n):
            at = (base + timedelta(milliseconds=i * 10)).isoformat().replace("+00:00", "Z")
            f.write(
                json.dumps({"metric": "heart_rate", "value": 60 + i % 40, "unit": "/min", "measured_at": at})
            )
            f.write("\n")


def stored(conn: psycopg.Connection[tuple[int]]) -> int:
    row = conn.execute("SELECT count(*) FROM readings").fetchone()
    assert row is not None
    return int(row[0])


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


@dataclass
class Run:
    workers: int
    seconds: float
    rate: float
    publish_s: float
    cpu_s: list[float]


def one_run(workers: int, n: int, tmp: Path) -> Run:
    with fresh_database("rpm_bench_scale") as url, mosquitto(tmp) as port:
        register(url)
        burst = tmp / "burst.jsonl"
        burst_file(burst, n)
        env = {k: v for k, v in os.environ.items() if not k.startswith("RPM_")}
        env.update(
            RPM_DATABASE_URL=url, RPM_MQTT_URL=f"mqtt://127.0.0.1:{port}", RPM_MQTT_TOPIC_PREFIX=PREFIX,
            RPM_MQTT_SHARED_GROUP="bench", RPM_MQTT_CLIENT_ID=f"bench-{workers}",
            RPM_HTTP_PORT=str(free_port()), RPM_DATA_DIR=str(tmp), RPM_LOG_LEVEL="INFO",
            RPM_ALERT_SCHEDULER_INTERVAL_S="3600", PYTHONPATH=str(ROOT),
        )  # fmt: skip
        log = tmp / f"serve-{workers}.log"
        args = [str(RPM_INGEST), "serve", "--workers", str(workers)]
        with log.open("wb") as out:
            serve = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while log.read_text(errors="replace").count("MQTT subscribed to") < workers:
                if serve.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"serve did not start: {log.read_text()[-2000:]}")
                time.sleep(0.1)
            pids = [serve.pid, *children(serve.pid)]
            cpu_before = [cpu_seconds(p) for p in pids]
            with psycopg.connect(url, autocommit=True) as conn, burst.open("rb") as lines:
                t0 = time.perf_counter()
                pub = subprocess.Popen(
                    [MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(port), "-q", "1",
                     "-t", f"{PREFIX}/{DEVICE}/readings", "-l"],
                    stdin=lines, stdout=subprocess.DEVNULL,
                )  # fmt: skip
                publish_s = 0.0
                while (count := stored(conn)) < n:
                    if pub.poll() is not None and not publish_s:
                        publish_s = time.perf_counter() - t0
                    if time.perf_counter() - t0 > 600:
                        raise SystemExit(f"only {count} of {n} stored after 600 s")
                    time.sleep(0.02)
                seconds = time.perf_counter() - t0
                pub.wait(60)
                publish_s = publish_s or seconds
            cpu = [cpu_seconds(p) - before for p, before in zip(pids, cpu_before, strict=True)]
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.wait(60)
    return Run(workers, seconds, n / seconds, publish_s, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--workers", default="1,2,3", help="comma-separated worker counts")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    runs: list[Run] = []
    print(f"{args.messages} QoS 1 readings from one mosquitto_pub -l burst; {os.cpu_count()} cores")
    for round_ in range(args.repeat):
        for workers in counts:
            with tempfile.TemporaryDirectory(prefix="rpm-scale-") as tmp:
                run = one_run(workers, args.messages, Path(tmp))
            runs.append(run)
            cpu = " + ".join(f"{c:.1f}" for c in run.cpu_s)
            print(
                f"round {round_ + 1}  workers {workers}: {run.rate:7.0f} msg/s  ({run.seconds:5.2f} s;"
                f" publisher done at {run.publish_s:5.2f} s; CPU s parent + workers: {cpu})",
                flush=True,
            )
    print("\nworkers  best msg/s  worst msg/s  vs 1 worker (best)")
    best_one = max(r.rate for r in runs if r.workers == counts[0])
    for workers in counts:
        rates = [r.rate for r in runs if r.workers == workers]
        print(f"{workers:7d}  {max(rates):10.0f}  {min(rates):11.0f}  {max(rates) / best_one:8.2f}x")


if __name__ == "__main__":
    main()

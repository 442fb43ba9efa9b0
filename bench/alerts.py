"""Cost of alert evaluation per reading, and latency from a committed reading to its alert on the
live stream.

    .venv/bin/python bench/alerts.py [--readings 60000] [--batch 100] [--patients 500] [--latency 300]

1. Ingest rate with rules off vs on, in the same run: the real pipeline (validate, attribute,
   COPY + INSERT ... ON CONFLICT, dead letters collected) storing the same readings into two identically
   prepared databases, alternating chunks between them so both see the same machine load (the
   cost is the median over chunk pairs, and also given from the totals). "On"
   adds the alert engine hook (clinical defaults: thresholds with debounce, weight-gain windows,
   device flags). Batches of --batch messages (as the MQTT writer commits them) and, as the worst
   case, one message per transaction (an HTTP request). --mix home (default): 96 % wearable
   heart rate + SpO2, 3 % BP panels, 1 % weights; --mix spot: 60/30/10; --abnormal (2 %) of
   messages carry an out-of-range value (or a device flag).
2. Latency: the real service (uvicorn + alerts component) with an SSE client connected; readings
   posted over HTTP alternately open and clear an alert; for each alert event we take the time
   from the HTTP answer (the reading is committed before it is sent) and from the event's own
   database timestamp (written just before commit) to its arrival on the stream.

PostgreSQL at RPM_BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres);
the databases it creates are dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import platform
import random
import socket
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psycopg
import uvicorn

# The repository, not bench/ (where fhir_export.py would shadow the package of that name).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._support import fresh_database  # noqa: E402
from devices.catalogue import load_catalogue  # noqa: E402
from ingest.alerts.component import alerts_component  # noqa: E402
from ingest.alerts.engine import AlertEngine  # noqa: E402
from ingest.db.pool import open_pool  # noqa: E402
from ingest.interpreter import tune_for_service  # noqa: E402
from ingest.pipeline import Envelope, Pipeline  # noqa: E402
from ingest.runtime import Runtime  # noqa: E402
from ingest.settings import Settings  # noqa: E402
from ingest.store.readings import prepare_session  # noqa: E402
from ingest.store.tokens import create_token  # noqa: E402

NOW = datetime.now(UTC).replace(microsecond=0)


def register(url: str, patients: int) -> None:
    with psycopg.connect(url) as conn:
        for p in range(patients):
            row = conn.execute(
                "INSERT INTO patients (clinic_id, mrn, display_name) VALUES ('default', %s, 'Bench')"
                " RETURNING id",
                (f"M{p}",),
            ).fetchone()
            assert row is not None
            for kind in ("S", "C", "W"):  # strap/oximeter, cuff, scale
                device = f"{kind}{p}"
                conn.execute(
                    "INSERT INTO devices (id, clinic_id, type) VALUES (%s, 'default', 'x')", (device,)
                )
                conn.execute(
                    "INSERT INTO device_assignments (device_id, patient_id, since) VALUES (%s, %s, %s)",
                    (device, row[0], NOW - timedelta(days=30)),
                )


MIXES = {
    # per 100 messages: wearable HR + SpO2, BP panels (sometimes flagged), weights
    "home": (96, 3, 1),  # a wearable every few minutes, BP and weight a few times a day
    "spot": (60, 30, 10),  # spot-check heavy: far more BP and weight than a home day has
}


def messages(
    total: int, patients: int, *, mix: str = "home", abnormal_rate: float = 0.02, seed: int = 7
) -> list[tuple[str, bytes]]:
    """(device, payload) pairs: heart rate + SpO2 from straps/oximeters, BP panels, weights."""
    wearable, bp, _ = MIXES[mix]
    rng = random.Random(seed)
    out: list[tuple[str, bytes]] = []
    start = NOW - timedelta(days=20)
    n = 0
    step = 0
    while n < total:
        p = step % patients
        at = start + timedelta(seconds=30 * step)
        stamp = at.isoformat()
        abnormal = rng.random() < abnormal_rate
        choice = step % 100
        if choice < wearable:
            device = f"S{p}"
            body: dict[str, Any] = {
                "readings": [
                    {
                        "metric": "heart_rate",
                        "value": 125 if abnormal else rng.randint(60, 95),
                        "unit": "/min",
                        "measured_at": stamp,
                    },
                    {
                        "metric": "spo2",
                        "value": 89 if abnormal else rng.randint(94, 99),
                        "unit": "%",
                        "measured_at": stamp,
                    },
                ]
            }
        elif choice < wearable + bp:
            device = f"C{p}"
            body = {
                "status": ["irregular_pulse"] if abnormal and rng.random() < 0.3 else [],
                "readings": [
                    {
                        "metric": "systolic_bp",
                        "value": 175 if abnormal else rng.randint(105, 150),
                        "unit": "mm[Hg]",
                        "measured_at": stamp,
                    },
                    {
                        "metric": "diastolic_bp",
                        "value": rng.randint(65, 95),
                        "unit": "mm[Hg]",
                        "measured_at": stamp,
                    },
                ],
            }
        else:
            device = f"W{p}"
            body = {
                "metric": "body_weight",
                "value": round(80 + rng.uniform(-0.4, 0.4) + (1.5 if abnormal else 0), 2),
                "unit": "kg",
                "measured_at": stamp,
            }
        payload = json.dumps(body).encode()
        out.append((device, payload))
        n += len(body.get("readings", [body]))
        step += 1
    return out


def ingest_rate(args: argparse.Namespace) -> dict[str, Any]:
    catalogue = load_catalogue()
    msgs = messages(args.readings, args.patients, mix=args.mix, abnormal_rate=args.abnormal)
    results: dict[str, Any] = {}
    for batch in (args.batch, 1):
        subset = msgs if batch > 1 else msgs[: max(len(msgs) // 10, 1000)]
        with fresh_database("rpm_bench_alerts") as off_url, fresh_database("rpm_bench_alerts") as on_url:
            register(off_url, args.patients)
            register(on_url, args.patients)
            off_pool = open_pool(off_url, min_size=1, max_size=2, name="off", prepare=prepare_session)
            on_pool = open_pool(on_url, min_size=1, max_size=2, name="on", prepare=prepare_session)
            try:
                in_hook = [0.0]

                def observe(seconds: float, in_hook: list[float] = in_hook) -> None:
                    in_hook[0] += seconds

                engine = AlertEngine(catalogue=catalogue, origin="bench", observe=observe)
                pipelines = {
                    "off": (off_pool, Pipeline(catalogue=catalogue)),
                    "on": (on_pool, Pipeline(catalogue=catalogue, hooks=[engine])),
                }
                tune_for_service()  # as `serve` does once started
                spent = {"off": 0.0, "on": 0.0}
                paired: list[float] = []
                stored = {"off": 0, "on": 0}
                # short chunks, alternating: the two sides of a pair see the same moment of the machine
                chunk = batch * max(1, 100 // batch)
                for start in range(0, len(subset), chunk):
                    part = subset[start : start + chunk]
                    pair: dict[str, float] = {}
                    for mode in ("off", "on") if (start // chunk) % 2 == 0 else ("on", "off"):
                        pool, pipeline = pipelines[mode]
                        t0 = time.perf_counter()
                        for b in range(0, len(part), batch):
                            envs = [
                                Envelope("bench", raw, datetime.now(UTC), device_id=device)
                                for device, raw in part[b : b + batch]
                            ]
                            with pool.connection() as conn, conn.transaction():
                                outcomes = pipeline.process(conn, envs, collect=[])
                            stored[mode] += sum(o.accepted for o in outcomes)
                        pair[mode] = time.perf_counter() - t0
                        spent[mode] += pair[mode]
                    # the same messages, one after the other: on this chunk, rules cost this much
                    paired.append(1 - pair["off"] / pair["on"])
                with on_pool.connection() as conn:
                    row = conn.execute("SELECT count(*) FROM alerts").fetchone()
                    alerts = row[0] if row else 0
            finally:
                off_pool.close()
                on_pool.close()
        off_rate, on_rate = stored["off"] / spent["off"], stored["on"] / spent["on"]
        results[f"batch_{batch}"] = {
            "readings": stored["on"],
            "rules_off_readings_per_s": round(off_rate),
            "rules_on_readings_per_s": round(on_rate),
            # median over chunk pairs: robust to a checkpoint or a noisy neighbour hitting one
            # side of one pair; the ratio of the totals is given too
            "rules_cost_percent": round(100 * statistics.median(paired), 1),
            "rules_cost_percent_of_totals": round(100 * (1 - on_rate / off_rate), 1),
            "hook_share_of_on_time_percent": round(100 * in_hook[0] / spent["on"], 1),
            "alerts_opened": alerts,
        }
    return results


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def latency(args: argparse.Namespace) -> dict[str, Any]:
    with fresh_database("rpm_bench_alerts") as url:
        register(url, 1)
        port = free_port()
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=url,
            mqtt_url="mqtt://127.0.0.1:1883",
            mqtt_enabled=False,
            http_port=port,
            rate_limit_per_minute=0,
            alert_scheduler_interval_s=3600,
        )
        with Runtime(settings, [alerts_component]) as runtime:
            assert runtime.app is not None
            server = uvicorn.Server(
                uvicorn.Config(runtime.app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
            )
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            while not server.started:
                time.sleep(0.02)
            runtime.start_components()
            assert runtime.services is not None
            with runtime.services.pool.connection() as conn:
                token, _ = create_token(conn, name="bench", role="admin")
            base = f"http://127.0.0.1:{port}"
            arrivals: dict[str, tuple[float, float]] = {}  # event key -> (recv wall, db at)
            got = threading.Condition()
            stop = threading.Event()

            def listen() -> None:
                headers = {"Authorization": f"Bearer {token}"}
                with (
                    httpx.Client(base_url=base, timeout=httpx.Timeout(10, read=None)) as client,
                    client.stream("GET", "/v1/alerts/stream", headers=headers) as r,
                ):
                    for line in r.iter_lines():
                        if stop.is_set():
                            return
                        if line.startswith("data:"):
                            now = time.time()
                            data = json.loads(line[5:])
                            key = f"{data['type']}:{data['alert']['last_value']:g}"
                            at = datetime.fromisoformat(data["at"].replace("Z", "+00:00")).timestamp()
                            with got:
                                arrivals[key] = (now, at)
                                got.notify_all()

            listener = threading.Thread(target=listen, daemon=True)
            listener.start()
            time.sleep(1.0)
            from_response: list[float] = []
            from_db: list[float] = []
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
                for i in range(args.latency):
                    abnormal = i % 2 == 0
                    # warnings (above 160): they resolve by themselves; a critical alert would latch
                    value = 165 + (i % 13) if abnormal else 120 + (i % 13)
                    at = NOW - timedelta(seconds=args.latency - i)
                    body = {
                        "device_id": "C0",
                        "readings": [
                            {
                                "metric": "systolic_bp",
                                "value": value,
                                "unit": "mm[Hg]",
                                "measured_at": at.isoformat(),
                            }
                        ],
                    }
                    r = client.post("/v1/readings", json=body)
                    answered = time.time()
                    assert r.status_code == 200, r.text
                    key = f"{'opened' if abnormal else 'resolved'}:{value:g}"
                    with got:
                        if not got.wait_for(partial(operator.contains, arrivals, key), timeout=10):
                            raise RuntimeError(f"event {key} never arrived")
                        recv, db_at = arrivals.pop(key)
                    if i >= 10:  # warm-up
                        from_response.append(recv - answered)
                        from_db.append(recv - db_at)
            stop.set()
            server.should_exit = True
            thread.join(timeout=10)

    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values) or [float("nan")]
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {
        "events": len(from_db),
        "from_http_answer_ms": {
            "p50": round(pct(from_response, 0.5), 2),
            "p99": round(pct(from_response, 0.99), 2),
        },
        "from_event_written_ms": {
            "p50": round(pct(from_db, 0.5), 2),
            "p99": round(pct(from_db, 0.99), 2),
            "max": round(max(from_db) * 1000, 2),
            "mean": round(statistics.mean(from_db) * 1000, 2),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=100, help="messages per transaction")
    parser.add_argument("--patients", type=int, default=500)
    parser.add_argument("--latency", type=int, default=300, help="alert events to time")
    parser.add_argument("--mix", choices=sorted(MIXES), default="home", help="message mix (see MIXES)")
    parser.add_argument("--abnormal", type=float, default=0.02, help="share of abnormal messages")
    args = parser.parse_args()
    print(
        f"# {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs,"
        f" mix={args.mix}, abnormal={args.abnormal}, load average {os.getloadavg()[0]:.1f}"
    )
    rates = ingest_rate(args)
    for name, row in rates.items():
        print(f"ingest {name}: {json.dumps(row)}")
    print(f"latency: {json.dumps(latency(args))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

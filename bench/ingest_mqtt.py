"""MQTT ingestion throughput, latency and memory, publisher and service on this machine.

    .venv/bin/python bench/ingest_mqtt.py [--messages 50000] [--rate 1000] [--latency-seconds 60]
                                          [--soak 0] [--devices 100] [--protocol 5]

One run reports, for the same QoS 1 stream (one reading per message, --devices devices):

(a) raw receive rate: a bare paho client in its own process, subscribed at QoS 1 and acknowledging
    on receipt, nothing else; --messages published as fast as the publisher goes;
(b) end to end: `rpm-ingest serve` (a subprocess, every component as deployed) receiving the same
    stream; rate = messages / (last commit - first publish);
(c) latency publish -> committed in PostgreSQL at a fixed --rate for --latency-seconds: p50, p99;
(d) the service's resident memory (RSS): peak over the run, and its course under --soak seconds
    of sustained load at --rate (300 for the 5-minute figure).

Commit times come from PostgreSQL itself: the benchmark's own database gets a statement trigger
on `readings` that sends the inserted readings' sequence numbers with NOTIFY, which PostgreSQL
delivers when (and only if) the transaction commits. Broker: a Mosquitto of the benchmark's own
with deploy/mosquitto/mosquitto.conf. Database: RPM_BENCH_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/postgres); the database it creates is dropped at the end.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil
import psycopg
from psycopg import sql

from devices.mqtt.options import broker_options
from devices.mqtt.publisher import Publisher
from ingest.db.migrate import migrate

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get("RPM_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
PREFIX = "bench-" + uuid.uuid4().hex[:6]

NOTIFY_SQL = """
CREATE FUNCTION bench_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    seqs bigint[];
    i integer := 1;
BEGIN
    SELECT array_agg((extract(epoch FROM measured_at - {base}) * 1000)::bigint) INTO seqs FROM new_rows;
    WHILE seqs IS NOT NULL AND i <= cardinality(seqs) LOOP
        PERFORM pg_notify('bench', array_to_string(seqs[i:i + 499], ','));
        i := i + 500;
    END LOOP;
    RETURN NULL;
END $$;
CREATE TRIGGER bench_notify AFTER INSERT ON readings REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION bench_notify();
"""

RAW_CONSUMER = """
import json, sys, time, threading
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes
port, topic, protocol = sys.argv[1], sys.argv[2], sys.argv[4]
n, receive_max = int(sys.argv[3]), int(sys.argv[5])
client_id = sys.argv[6]  # a persistent session: "drain" runs connect again to a queued backlog
done = threading.Event()
state = {"count": 0, "first": None, "last": None}
def on_message(client, userdata, message):
    now = time.time()
    if state["first"] is None:
        state["first"] = now
    state["count"] += 1
    state["last"] = now
    if state["count"] >= n:
        done.set()
def on_connect(client, userdata, flags, reason, properties):
    client.subscribe(topic, qos=1)
v5 = protocol == "5"
client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                     protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, clean_session=None if v5 else False)
client.on_message = on_message
client.on_subscribe = lambda *a: print("subscribed", flush=True)
client.on_connect = on_connect
props = None
if v5:
    props = Properties(PacketTypes.CONNECT)
    props.ReceiveMaximum = receive_max
    props.SessionExpiryInterval = 3600
client.connect("127.0.0.1", int(port), properties=props, **({"clean_start": False} if v5 else {}))
client.loop_start()
if n:
    done.wait(600)
else:
    time.sleep(1)
client.disconnect()
client.loop_stop()
print(json.dumps(state), flush=True)
"""


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
        f"user {getpass.getuser()}\npersistence true\npersistence_location {directory}/\n"
        f"log_dest file {directory}/mosquitto.log\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
        + (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    )
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("mosquitto did not start") from None
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def database(devices: int) -> Iterator[str]:
    name = f"rpm_bench_mqtt_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urlunsplit(urlsplit(ADMIN_URL)._replace(path="/" + name))
    try:
        migrate(url)
        with psycopg.connect(url) as conn:
            conn.execute(sql.SQL(NOTIFY_SQL).format(base=sql.Literal(BASE)))
            for d in range(devices):
                row = conn.execute(
                    "INSERT INTO patients (clinic_id, mrn, display_name)"
                    " VALUES ('default', %s, %s) RETURNING id",
                    (f"B-{d}", f"Bench {d}"),
                ).fetchone()
                assert row is not None
                conn.execute(
                    "INSERT INTO devices (id, clinic_id, type) VALUES (%s, 'default', 'x')", (f"B{d}",)
                )
                conn.execute(
                    "INSERT INTO device_assignments (device_id, patient_id, since) VALUES (%s, %s, %s)",
                    (f"B{d}", row[0], BASE - timedelta(days=1)),
                )
        yield url
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def payload(seq: int) -> bytes:
    """One heart-rate reading; its measured_at encodes the sequence number (ms after BASE)."""
    at = (BASE + timedelta(milliseconds=seq)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return b'{"metric":"heart_rate","value":%d,"unit":"/min","measured_at":"%s","source":"bench"}' % (
        60 + seq % 40, at.encode()
    )


def stream(start: int, n: int, devices: int, prefix: str) -> list[tuple[int, str, bytes]]:
    return [(s, f"{prefix}/B{s % devices}/readings", payload(s)) for s in range(start, start + n)]


def publisher(port: int, protocol: str, name: str) -> Publisher:
    options = broker_options(f"mqtt://127.0.0.1:{port}", client_id=name, protocol=protocol)
    pub = Publisher(options, max_pending=1000)
    pub.start()
    return pub


class Commits:
    """Commit times of readings, from NOTIFY (delivered by PostgreSQL at commit)."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("LISTEN bench")
        self.at: dict[int, float] = {}
        self.lock = threading.Lock()
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                for n in self.conn.notifies(timeout=0.5):
                    now = time.time()
                    with self.lock:
                        for part in n.payload.split(","):
                            self.at.setdefault(int(part), now)
            except psycopg.OperationalError:
                return  # the database is being dropped at the end

    def wait_for(self, seqs: range, timeout_s: float) -> float:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if seqs[-1] in self.at and all(s in self.at for s in seqs):
                    return max(self.at[s] for s in seqs)
            time.sleep(0.05)
        raise SystemExit(f"timed out waiting for {len(seqs)} commits")

    def close(self) -> None:
        self._stop = True
        self.thread.join(2)
        self.conn.close()


class RssSampler:
    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            try:
                self.samples.append((time.monotonic(), self.process.memory_info().rss))
            except psutil.Error:
                return

    def peak_mib(self) -> float:
        return max(r for _, r in self.samples) / 2**20

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(2)


def raw_consumer(port: int, prefix: str, n: int, protocol: str, client_id: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", RAW_CONSUMER, str(port), f"{prefix}/+/readings", str(n), protocol, "1000",
         client_id],
        stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "subscribed":
        raise SystemExit("raw consumer did not subscribe")
    return proc


def raw_result(proc: subprocess.Popen[str], n: int) -> dict[str, float]:
    assert proc.stdout is not None
    state: dict[str, float] = json.loads(proc.stdout.readline())
    proc.wait(30)
    if state["count"] < n:
        raise SystemExit(f"raw consumer got {state['count']} of {n}")
    return state


def publish_all(port: int, protocol: str, messages: list[tuple[int, str, bytes]], name: str) -> float:
    """Publish as fast as the publisher goes; returns the time of the first publish."""
    pub = publisher(port, protocol, name)
    first = time.time()
    for _, topic, body in messages:
        pub.publish(topic, body)
    pub.flush(300)
    pub.close()
    return first


def raw_receive(port: int, n: int, devices: int, protocol: str) -> tuple[float, float]:
    """(stream rate, backlog drain rate) of a bare paho consumer that acknowledges on receipt."""
    prefix = PREFIX + "-raw"
    proc = raw_consumer(port, prefix, n, protocol, "bench-raw")
    first = publish_all(port, protocol, stream(0, n, devices, prefix), "bench-pub-raw")
    streamed = n / (raw_result(proc, n)["last"] - first)
    raw_result(raw_consumer(port, prefix, 0, protocol, "bench-raw"), 0)  # session exists, queue empty
    publish_all(port, protocol, stream(n, n, devices, prefix), "bench-pub-raw")
    drained = raw_result(raw_consumer(port, prefix, n, protocol, "bench-raw"), n)
    return streamed, n / (drained["last"] - drained["first"])


@contextmanager
def service(url: str, port: int, protocol: str, data: Path) -> Iterator[subprocess.Popen[bytes]]:
    http = free_port()
    env = {**os.environ, "RPM_DATABASE_URL": url, "RPM_MQTT_URL": f"mqtt://127.0.0.1:{port}",
           "RPM_MQTT_TOPIC_PREFIX": PREFIX, "RPM_MQTT_CLIENT_ID": f"{PREFIX}-svc",
           "RPM_MQTT_PROTOCOL": protocol, "RPM_HTTP_PORT": str(http), "RPM_DATA_DIR": str(data),
           "RPM_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([str(Path(sys.executable).with_name("rpm-ingest")), "serve"], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(data / "serve.log", "wb"))  # noqa: SIM115
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{http}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("service did not become ready: " + (data / "serve.log").read_text()[-2000:])
            time.sleep(0.2)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def end_to_end(port: int, commits: Commits, start: int, n: int, devices: int, protocol: str) -> float:
    first = publish_all(port, protocol, stream(start, n, devices, PREFIX), "bench-pub-e2e")
    last = commits.wait_for(range(start, start + n), 300)
    return n / (last - first)


def fixed_rate(
    port: int, commits: Commits, start: int, rate: float, seconds: float, devices: int, protocol: str,
    rss: RssSampler | None = None,
) -> tuple[list[float], float, list[tuple[float, float]]]:
    n = int(rate * seconds)
    messages = stream(start, n, devices, PREFIX)
    published: dict[int, float] = {}
    pub = publisher(port, protocol, f"bench-pub-{start}")
    t0 = time.monotonic()
    minutes: list[tuple[float, float]] = []
    next_mark = 60.0
    for k, (seq, topic, body) in enumerate(messages):
        ahead = k / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
        published[seq] = time.time()
        pub.publish(topic, body)
        if rss is not None and time.monotonic() - t0 >= next_mark and rss.samples and k < n - 1:
            minutes.append((next_mark, rss.samples[-1][1] / 2**20))
            next_mark += 60
    achieved = n / (time.monotonic() - t0)
    if rss is not None and rss.samples:
        minutes.append((time.monotonic() - t0, rss.samples[-1][1] / 2**20))
    pub.flush(120)
    pub.close()
    commits.wait_for(range(start, start + n), 300)
    latencies = [commits.at[s] - published[s] for s in range(start, start + n)]
    return latencies, achieved, minutes


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=50_000, help="messages for (a) and (b)")
    ap.add_argument("--rate", type=float, default=1000.0, help="messages per second for (c) and the soak")
    ap.add_argument("--latency-seconds", type=float, default=60.0)
    ap.add_argument("--soak", type=float, default=0.0, help="seconds of sustained load for the RSS course")
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--protocol", choices=["5", "3.1.1"], default="5")
    args = ap.parse_args()
    logging.getLogger("ingest.mqtt.paho").setLevel(logging.CRITICAL)

    results: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "messages": args.messages, "devices": args.devices, "protocol": args.protocol,
    }
    with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as tmp, mosquitto(Path(tmp)) as port, \
            database(args.devices) as url:
        print(f"(a) raw paho receive, {args.messages} QoS 1 messages, streamed and as a backlog ...",
              flush=True)
        raw, raw_drain = raw_receive(port, args.messages, args.devices, args.protocol)
        results.update(raw_receive_msg_s=round(raw), raw_drain_msg_s=round(raw_drain))
        print(f"    streamed {raw:,.0f} msg/s, backlog drained at {raw_drain:,.0f} msg/s", flush=True)
        commits = Commits(url)
        data = Path(tmp) / "data"
        data.mkdir()
        with service(url, port, args.protocol, data) as proc:
            rss = RssSampler(proc.pid)
            print(f"(b) end to end into PostgreSQL, {args.messages} messages ...", flush=True)
            e2e = end_to_end(port, commits, 0, args.messages, args.devices, args.protocol)
            results["end_to_end_msg_s"] = round(e2e)
            results["end_to_end_vs_raw"] = round(e2e / raw, 3)
            print(f"    {e2e:,.0f} msg/s = {100 * e2e / raw:.0f} % of raw", flush=True)
            start = args.messages
            print(f"(c) latency at {args.rate:.0f} msg/s for {args.latency_seconds:.0f} s ...", flush=True)
            lat, achieved, _ = fixed_rate(port, commits, start, args.rate, args.latency_seconds, args.devices,
                                          args.protocol)
            results.update(
                latency_rate_msg_s=round(achieved), latency_p50_ms=round(1000 * pct(lat, 50), 1),
                latency_p99_ms=round(1000 * pct(lat, 99), 1), latency_max_ms=round(1000 * max(lat), 1),
                latency_mean_ms=round(1000 * statistics.fmean(lat), 1),
            )
            print(f"    p50 {results['latency_p50_ms']} ms, p99 {results['latency_p99_ms']} ms, "
                  f"max {results['latency_max_ms']} ms (published at {achieved:,.0f} msg/s)", flush=True)
            start += len(lat)
            if args.soak > 0:
                print(f"(d) soak at {args.rate:.0f} msg/s for {args.soak:.0f} s ...", flush=True)
                soak_start = len(rss.samples)
                lat, achieved, minutes = fixed_rate(port, commits, start, args.rate, args.soak, args.devices,
                                                    args.protocol, rss)
                soak = [r / 2**20 for _, r in rss.samples[soak_start:]]
                results.update(
                    soak_seconds=args.soak, soak_p99_ms=round(1000 * pct(lat, 99), 1),
                    soak_rss_first_mib=round(soak[0], 1), soak_rss_last_mib=round(soak[-1], 1),
                    soak_rss_max_mib=round(max(soak), 1),
                    soak_rss_by_minute_mib=[round(m, 1) for _, m in minutes],
                )
                print(f"    RSS {soak[0]:.0f} -> {soak[-1]:.0f} MiB (max {max(soak):.0f}); per minute: "
                      f"{results['soak_rss_by_minute_mib']}; p99 {results['soak_p99_ms']} ms", flush=True)
                start += len(lat)
            rss.stop()
        # The service stopped: a backlog queues up in the broker for its persistent session.
        n = args.messages
        publish_all(port, args.protocol, stream(start, n, args.devices, PREFIX), "bench-pub-backlog")
        print(f"(b) end to end, a backlog of {n} messages queued while the service was down ...", flush=True)
        with service(url, port, args.protocol, data) as proc:
            rss2 = RssSampler(proc.pid)
            commits.wait_for(range(start, start + n), 300)
            rss2.stop()
        times = [commits.at[s] for s in range(start, start + n)]
        drain = n / (max(times) - min(times))
        results.update(end_to_end_drain_msg_s=round(drain),
                       end_to_end_drain_vs_raw=round(drain / raw_drain, 3))
        print(f"    drained at {drain:,.0f} msg/s = {100 * drain / raw_drain:.0f} % of the raw drain",
              flush=True)
        peak = max(rss.peak_mib(), rss2.peak_mib())
        results["service_peak_rss_mib"] = round(peak, 1)
        print(f"(d) service peak RSS {peak:.0f} MiB", flush=True)
        commits.close()
    print(json.dumps(results))


if __name__ == "__main__":
    main()

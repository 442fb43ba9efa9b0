"""MQTT ingestion measured beside bare receivers on the same broker, in one run.

    .venv/bin/python bench/ingest_mqtt.py [--mode burst|stream|gateway|all] [--messages 20000]
        [--repeat 2] [--workers 1|2|3] [--publisher mosquitto_pub|paho] [--rate 1000]
        [--latency-seconds 20] [--soak 0] [--profile DIR] [--service-from DIR]

Modes (each against a Mosquitto and a database of the benchmark's own):

burst    one device: --malformed payloads it must dead-letter (not JSON, NaN, unknown metric, out
         of range, wrong unit, future time...), then --messages heart-rate readings, one a message.
stream   --devices devices (100), one publisher connection each, --messages readings in all.
gateway  one home gateway coming back online: --gateway-messages messages of --gateway-batch (100)
         readings each; readings/s against raw COPY of the same rows into ``readings`` (before
         each round and after the last, in the same database, a commit per --copy-chunk rows).

For burst and stream, each of --repeat rounds runs, in this order and on the same broker:
(1) bare paho: a plain paho-mqtt client in its own process, QoS 1, acknowledging on receipt;
(2) mosquitto_sub (C, libmosquitto), QoS 1; (3) the service: ``rpm-ingest serve`` (--workers N:
``serve --workers N`` on one MQTT v5 shared subscription), every component as deployed; and bare
paho once more after the last round, so each service round is compared with the bare paho rounds
before it and after it, averaged, besides the one before it (the machine's speed drifts). Rate =
messages / (last received or committed - first published); commit times come from PostgreSQL
itself (a statement trigger on ``readings`` sends NOTIFY, delivered only at commit). The
publishers are ``mosquitto_pub -l`` processes (one per device, all connected before the first
line is written) so the publisher is not the limit; ``--publisher paho`` uses the project's own.

Each round also says where the CPU went (CPU seconds per wall second: the service's processes,
the broker, PostgreSQL's backends for this database, the publishers, everyone else on the machine)
and the CPU per message of each receiver: on a machine shared with other work, rates swing with
the load while CPU per message does not.

Then latency publish -> committed at a fixed --rate for --latency-seconds (lines written to the
publishers' pipes at that pace, timestamped as written): p50, p99, max; the service's resident
memory (RSS, per process); with --soak S, S seconds more at --rate over the --devices, printing RSS
and p99 every minute (``--soak 1800 --rate 1000`` is the 30-minute soak). --profile DIR records the
service with py-spy during the rounds (collapsed stacks; the summary prints the hottest frames;
RPM_BENCH_PY_SPY=idle samples waiting threads too). --service-from DIR runs the service (and its
migrations) from another checkout, for before/after comparisons. Database: RPM_BENCH_DATABASE_URL
(default postgresql://postgres@127.0.0.1:5432/postgres); what it creates is dropped at the end.
"""

from __future__ import annotations

import argparse
import collections
import getpass
import json
import logging
import os
import platform
import re
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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg
from psycopg import sql

from devices.mqtt.options import broker_options
from devices.mqtt.publisher import Publisher
from ingest.db.migrate import migrate

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get("RPM_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
MOSQUITTO_SUB = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"
PY_SPY = Path(sys.executable).with_name("py-spy")
# --gil: samples of threads holding the interpreter lock (where the CPU goes); RPM_BENCH_PY_SPY=idle:
# every thread at every sample, waiting included (where the wall-clock time goes)
PY_SPY_MODE = ["--idle"] if os.environ.get("RPM_BENCH_PY_SPY") == "idle" else ["--gil"]
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
RUN = uuid.uuid4().hex[:6]
PREFIX = f"bench-{RUN}"
BROKER_PIDS: list[int] = []  # the benchmark's Mosquitto (for the CPU account)
PROBLEM_LEVELS = ("WARNING", "ERROR  ", "CRITICAL")  # as the service's log lines spell them

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

# A bare paho receiver: QoS 1 on a persistent session (created beforehand, so nothing published
# while it connects is missed), acknowledging on receipt, nothing else.
RAW_CONSUMER = """
import json, sys, time, threading
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes
port, topic, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
protocol, client_id = sys.argv[4], sys.argv[5]
done = threading.Event()
state = {"count": 0, "first": None, "last": None}
def on_message(client, userdata, message):
    now = time.time()
    if state["first"] is None:
        state["first"] = now
        state["cpu_first"] = time.process_time()
    state["count"] += 1
    state["last"] = now
    state["cpu_last"] = time.process_time()
    if state["count"] >= n:
        done.set()
def on_subscribe(*args):
    print("subscribed", flush=True)
v5 = protocol == "5"
client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                     protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, clean_session=None if v5 else False)
client.on_message = on_message
client.on_subscribe = on_subscribe
client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
props = None
if v5:
    props = Properties(PacketTypes.CONNECT)
    props.ReceiveMaximum = 1000
    props.SessionExpiryInterval = 3600
client.connect("127.0.0.1", port, properties=props, **({"clean_start": False} if v5 else {}))
client.loop_start()
if n:
    done.wait(900)
else:
    time.sleep(0.5)
client.disconnect()
client.loop_stop()
print(json.dumps(state), flush=True)
"""

# Payloads the service must dead-letter (burst mode sends them first, cycling through).
MALFORMED: tuple[bytes, ...] = (
    b'{"metric":"heart_rate","value":72,"unit":"/min","measured_at":',  # truncated JSON
    b"not json at all",
    b'{"metric":"heart_rate","value":72,"unit":"/min","measured_at":"2026-01-01T00:00:00Z","x":NaN}',
    b'{"metric":"no_such_metric","value":1,"unit":"1","measured_at":"2026-01-01T00:00:00Z"}',
    b'{"metric":"heart_rate","value":9999,"unit":"/min","measured_at":"2026-01-01T00:00:00Z"}',
    b'{"metric":"heart_rate","value":72,"unit":"kg","measured_at":"2026-01-01T00:00:00Z"}',
    b'{"metric":"heart_rate","value":72,"unit":"/min","measured_at":"2099-01-01T00:00:00Z"}',
    b'{"metric":"heart_rate","value":72,"unit":"/min","measured_at":"2026-01-01T00:00:00"}',
    b'{"metric":"heart_rate","value":"72","unit":"/min","measured_at":"2026-01-01T00:00:00Z"}',
    b"[1,2,3]",
    b'{"readings":[]}',
    b'{"device_id":"someone-else","metric":"heart_rate","value":72,"unit":"/min",'
    b'"measured_at":"2026-01-01T00:00:00Z"}',
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ms(value: float) -> float:
    return round(1000 * value, 1)


def pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# --- the peers: broker, database, commit times, memory ---------------------------------------


@contextmanager
def mosquitto(directory: Path) -> Iterator[int]:
    port = free_port()
    conf = directory / "mosquitto.conf"
    conf.write_text(
        f"user {getpass.getuser()}\npersistence true\npersistence_location {directory}/\n"
        f"log_dest file {directory}/mosquitto.log\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
        + (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    )
    proc = subprocess.Popen(
        [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    BROKER_PIDS.append(proc.pid)
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


def device_ids(devices: int) -> list[str]:
    return [f"B{d}" for d in range(devices)]


@contextmanager
def database(devices: Sequence[str], service_from: Path | None = None) -> Iterator[str]:
    name = f"rpm_bench_mqtt_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urlunsplit(urlsplit(ADMIN_URL)._replace(path="/" + name))
    try:
        if service_from is None:
            migrate(url)
        else:  # the schema of the code under test
            subprocess.run(
                [str(Path(sys.executable).with_name("rpm-ingest")), "migrate"],
                env={**os.environ, "RPM_DATABASE_URL": url, "PYTHONPATH": str(service_from)},
                check=True,
                stdout=subprocess.DEVNULL,
            )
        with psycopg.connect(url) as conn:
            conn.execute(sql.SQL(NOTIFY_SQL).format(base=sql.Literal(BASE)))
            for d, device in enumerate(devices):
                row = conn.execute(
                    "INSERT INTO patients (clinic_id, mrn, display_name)"
                    " VALUES ('default', %s, %s) RETURNING id",
                    (f"B-{d}", f"Bench {d}"),
                ).fetchone()
                assert row is not None
                conn.execute(
                    "INSERT INTO devices (id, clinic_id, type) VALUES (%s, 'default', 'x')", (device,)
                )
                conn.execute(
                    "INSERT INTO device_assignments (device_id, patient_id, since) VALUES (%s, %s, %s)",
                    (device, row[0], BASE - timedelta(days=1)),
                )
        yield url
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


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

    def wait_for(self, seqs: Sequence[int], timeout_s: float) -> float:
        """The last commit time of ``seqs`` once all committed."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if seqs[-1] in self.at and all(s in self.at for s in seqs):
                    return max(self.at[s] for s in seqs)
            time.sleep(0.02)
        with self.lock:
            got = sum(1 for s in seqs if s in self.at)
        raise SystemExit(f"timed out: {got} of {len(seqs)} readings committed")

    def curve(self, seqs: Sequence[int], first: float) -> str:
        """When the readings committed, after ``first`` (the first publish): the first commit, the
        10th, 50th and 90th percentile and the last, and the rate between the 10th and 90th."""
        with self.lock:
            times = sorted(self.at[s] - first for s in seqs)
        at = {p: times[min(len(times) - 1, len(times) * p // 100)] for p in (10, 50, 90)}
        steady = 0.8 * len(times) / max(at[90] - at[10], 1e-9)
        return (
            f"committed after (ms): first {ms(times[0]):.0f}, 10 % {ms(at[10]):.0f}, 50 % {ms(at[50]):.0f},"
            f" 90 % {ms(at[90]):.0f}, last {ms(times[-1]):.0f}; 10-90 % at {steady:,.0f} readings/s"
        )

    def close(self) -> None:
        self._stop = True
        self.thread.join(2)
        self.conn.close()


class RssSampler:
    """Resident memory of a process and its children (the workers of ``serve --workers``)."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.samples: list[tuple[float, dict[int, int]]] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            try:
                procs = [self.root, *self.root.children()]
                sample = {}
                for p in procs:
                    try:
                        sample[p.pid] = p.memory_info().rss
                    except psutil.Error:
                        pass
                self.samples.append((time.monotonic(), sample))
            except psutil.Error:
                return

    def latest_mib(self) -> dict[int, float]:
        return {pid: r / 2**20 for pid, r in self.samples[-1][1].items()} if self.samples else {}

    def peak_mib(self) -> dict[int, float]:
        peak: dict[int, int] = {}
        for _, sample in self.samples:
            for pid, rss in sample.items():
                peak[pid] = max(peak.get(pid, 0), rss)
        return {pid: r / 2**20 for pid, r in peak.items()}

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(2)


def workers_of(proc: subprocess.Popen[bytes], workers: int) -> list[int]:
    """The pids doing the work: the process itself, or the workers of ``serve --workers``."""
    if workers == 1:
        return [proc.pid]
    return [c.pid for c in psutil.Process(proc.pid).children()]


# --- messages and publishers -------------------------------------------------------------------


def payload(seq: int) -> bytes:
    """One heart-rate reading; its measured_at encodes the sequence number (ms after BASE)."""
    at = (BASE + timedelta(milliseconds=seq)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return b'{"metric":"heart_rate","value":%d,"unit":"/min","measured_at":"%s","source":"bench"}' % (
        60 + seq % 40,
        at.encode(),
    )


def gateway_payload(first_seq: int, size: int) -> bytes:
    """A gateway's batch of ``size`` readings (sequence numbers first_seq...)."""
    return json.dumps(
        {
            "gateway_id": "bench-gw",
            "readings": [
                {
                    "metric": "heart_rate",
                    "value": 60 + s % 40,
                    "unit": "/min",
                    "measured_at": (BASE + timedelta(milliseconds=s)).isoformat(timespec="milliseconds"),
                }
                for s in range(first_seq, first_seq + size)
            ],
        },
        separators=(",", ":"),
    ).encode()


@dataclass
class Load:
    """What one round publishes: lines per device (each line one MQTT message)."""

    lines: dict[str, list[bytes]]
    readings: list[int] = field(default_factory=list)  # sequence numbers of the valid readings

    @property
    def messages(self) -> int:
        return sum(map(len, self.lines.values()))


def burst_load(start: int, n: int, malformed: int) -> Load:
    bad = [MALFORMED[i % len(MALFORMED)] for i in range(malformed)]
    return Load({"B0": bad + [payload(s) for s in range(start, start + n)]}, list(range(start, start + n)))


def stream_load(start: int, n: int, devices: Sequence[str]) -> Load:
    lines: dict[str, list[bytes]] = {d: [] for d in devices}
    for s in range(start, start + n):
        lines[devices[s % len(devices)]].append(payload(s))
    return Load(lines, list(range(start, start + n)))


def gateway_load(start: int, messages: int, size: int) -> Load:
    lines = [gateway_payload(start + m * size, size) for m in range(messages)]
    return Load({"B0": lines}, list(range(start, start + messages * size)))


def mosquitto_pub(port: int, topic: str, protocol: str, stdin: IO[bytes] | int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            MOSQUITTO_PUB,
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-q",
            "1",
            "-l",
            "-t",
            topic,
            "-V",
            "mqttv5" if protocol == "5" else "mqttv311",
            "-M",
            "1000",
        ],
        stdin=stdin,
        stdout=subprocess.DEVNULL,
    )


def wait_connected(port: int, procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """Until every publisher process holds an established connection to the broker."""
    deadline = time.monotonic() + 60
    waiting = list(procs)
    while waiting:
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(waiting)} mosquitto_pub processes did not connect")
        still = []
        for proc in waiting:
            try:
                conns = psutil.Process(proc.pid).net_connections(kind="tcp")
            except psutil.Error:
                conns = []
            if not any(
                c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED for c in conns
            ):
                still.append(proc)
        waiting = still
        if waiting:
            time.sleep(0.05)
    time.sleep(0.2)  # CONNACK


def publish_load(port: int, protocol: str, prefix: str, load: Load, publisher: str, tmp: Path) -> float:
    """Publish every line as fast as the publisher goes; returns the time of the first publish."""
    if publisher == "paho":
        pub = Publisher(
            broker_options(
                f"mqtt://127.0.0.1:{port}", client_id=f"bench-pub-{uuid.uuid4().hex[:6]}", protocol=protocol
            ),
            max_pending=1000,
        )
        pub.start()
        first = time.time()
        for device, lines in load.lines.items():
            for line in lines:
                pub.publish(f"{prefix}/{device}/readings", line)
        pub.flush(600)
        pub.close()
        return first
    # Every publisher connected first, then all lines written at once: a hundred processes
    # starting on a loaded machine would otherwise be what is measured.
    procs = {d: mosquitto_pub(port, f"{prefix}/{d}/readings", protocol, subprocess.PIPE) for d in load.lines}
    wait_connected(port, list(procs.values()))

    def feed(proc: subprocess.Popen[bytes], lines: list[bytes]) -> None:
        assert proc.stdin is not None
        proc.stdin.write(b"\n".join(lines) + b"\n")
        proc.stdin.close()

    feeders = [threading.Thread(target=feed, args=(procs[d], lines)) for d, lines in load.lines.items()]
    first = time.time()
    for t in feeders:
        t.start()
    for t in feeders:
        t.join()
    for proc in procs.values():
        if proc.wait(600) != 0:
            raise SystemExit("mosquitto_pub failed")
    return first


def paced_publish(
    port: int, protocol: str, prefix: str, load: Load, rate: float, on_minute: Any = None
) -> dict[int, float]:
    """Write the lines to running ``mosquitto_pub -l`` processes at ``rate`` lines per second,
    round robin over the devices; returns each valid reading's publish time (written)."""
    order: list[tuple[str, bytes]] = []
    queues = {d: collections.deque(lines) for d, lines in load.lines.items()}
    while any(queues.values()):
        for d, q in queues.items():
            if q:
                order.append((d, q.popleft()))
    procs = {d: mosquitto_pub(port, f"{prefix}/{d}/readings", protocol, subprocess.PIPE) for d in load.lines}
    wait_connected(port, list(procs.values()))
    published: dict[int, float] = {}
    seq_of = iter(load.readings)
    t0 = time.monotonic()
    next_minute = 60.0
    for k, (device, line) in enumerate(order):
        ahead = k / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
        stdin = procs[device].stdin
        assert stdin is not None
        stdin.write(line + b"\n")
        stdin.flush()
        published[next(seq_of)] = time.time()
        if on_minute is not None and time.monotonic() - t0 >= next_minute:
            on_minute(next_minute, published)
            next_minute += 60
    for proc in procs.values():
        assert proc.stdin is not None
        proc.stdin.close()
    for proc in procs.values():
        proc.wait(120)
    return published


# --- the receivers -----------------------------------------------------------------------------


def bare_paho(port: int, protocol: str, load: Load, publisher: str, tmp: Path) -> tuple[float, float]:
    """(messages/s, CPU µs per message between its first and last message)."""
    prefix = f"{PREFIX}-paho-{uuid.uuid4().hex[:6]}"
    client_id = f"bench-paho-{uuid.uuid4().hex[:6]}"
    args = [sys.executable, "-c", RAW_CONSUMER, str(port), f"{prefix}/+/readings"]
    # first the session and its subscription, then the receiver on it while the load is published
    subprocess.run([*args, "0", protocol, client_id], check=True, stdout=subprocess.DEVNULL, timeout=30)
    proc = subprocess.Popen(
        [*args, str(load.messages), protocol, client_id], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "subscribed":
        raise SystemExit("bare paho receiver did not subscribe")
    first = publish_load(port, protocol, prefix, load, publisher, tmp)
    state = json.loads(proc.stdout.readline())
    proc.wait(30)
    if state["count"] < load.messages:
        raise SystemExit(f"bare paho received {state['count']} of {load.messages}")
    cpu_us = 1e6 * (state["cpu_last"] - state["cpu_first"]) / max(load.messages - 1, 1)
    return float(load.messages / (state["last"] - first)), cpu_us


def bare_mosquitto_sub(
    port: int, protocol: str, load: Load, publisher: str, tmp: Path
) -> tuple[float, float]:
    """(messages/s, CPU µs per message over its whole run)."""
    prefix = f"{PREFIX}-sub-{uuid.uuid4().hex[:6]}"
    client_id = f"bench-sub-{uuid.uuid4().hex[:6]}"
    common = [
        MOSQUITTO_SUB,
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-q",
        "1",
        "-c",
        "-i",
        client_id,
        "-t",
        f"{prefix}/+/readings",
        "-V",
        "mqttv5" if protocol == "5" else "mqttv311",
    ]
    if protocol == "5":
        common += ["-x", "3600"]
    subprocess.run([*common, "-E"], check=True, timeout=30)  # the session and its subscription
    proc = subprocess.Popen([*common, "-C", str(load.messages)], stdout=subprocess.DEVNULL)
    first = publish_load(port, protocol, prefix, load, publisher, tmp)
    _, status, usage = os.wait4(proc.pid, 0)  # its resource usage comes with it
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit("mosquitto_sub failed")
    rate = load.messages / (time.time() - first)
    return rate, 1e6 * (usage.ru_utime + usage.ru_stime) / load.messages


@contextmanager
def service(
    url: str, port: int, protocol: str, data: Path, workers: int, service_from: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    http = free_port()
    env = {
        **os.environ,
        "RPM_DATABASE_URL": url,
        "RPM_MQTT_URL": f"mqtt://127.0.0.1:{port}",
        "RPM_MQTT_TOPIC_PREFIX": PREFIX,
        "RPM_MQTT_CLIENT_ID": f"{PREFIX}-svc",
        "RPM_MQTT_PROTOCOL": protocol,
        "RPM_HTTP_PORT": str(http),
        "RPM_DATA_DIR": str(data),
        "RPM_LOG_LEVEL": "INFO",
    }
    if service_from is not None:  # another checkout's code (before/after comparisons)
        env["PYTHONPATH"] = os.pathsep.join([str(service_from), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    command = [str(Path(sys.executable).with_name("rpm-ingest")), "serve"]
    if workers > 1:
        env["RPM_MQTT_SHARED_GROUP"] = "bench"
        command += ["--workers", str(workers)]
    log = data / f"serve-{uuid.uuid4().hex[:6]}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=out)
    try:
        deadline = time.monotonic() + 120
        while log.read_text(errors="replace").count("MQTT subscribed to") < workers:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("service did not subscribe: " + log.read_text(errors="replace")[-3000:])
            time.sleep(0.2)
        time.sleep(0.5)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        lines = log.read_text(errors="replace").splitlines()
        problems = [line for line in lines if any(f" {level} " in line for level in PROBLEM_LEVELS)]
        print(f"  service log: {len(problems)} warnings and errors", flush=True)
        for line in problems[:5]:
            print(f"    {line[:300]}", flush=True)


class Profiler:
    """py-spy on the service's worker processes while a round runs (--profile DIR)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.files: list[Path] = []

    @contextmanager
    def record(self, pids: Sequence[int], name: str) -> Iterator[None]:
        if self.directory is None:
            yield
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        spies = []
        for pid in pids:
            out = self.directory / f"{name}-{pid}.txt"
            self.files.append(out)
            spies.append(
                subprocess.Popen(
                    [
                        str(PY_SPY),
                        "record",
                        "--pid",
                        str(pid),
                        "--rate",
                        "200",
                        "--format",
                        "raw",
                        *PY_SPY_MODE,
                        "--threads",
                        "--nonblocking",
                        "-o",
                        str(out),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        time.sleep(1.0)  # attached
        try:
            yield
        finally:
            for spy in spies:
                spy.send_signal(signal.SIGINT)
            for spy in spies:
                spy.wait(60)


def flame_summary(files: Sequence[Path], top: int = 25) -> list[str]:
    """The hottest frames of py-spy's collapsed stacks: inclusive share of samples holding the GIL."""
    total = 0
    inclusive: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    frame_re = re.compile(r"^(.*?) \((.*?)(?::\d+)?\)$")
    for path in files:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack:
                continue
            count = int(count_text)
            total += count
            frames = stack.split(";")
            threads[re.sub(r"^thread \(\d+\): ", "", frames[0]).split("-bench")[0]] += count
            names = set()
            for frame in frames[1:]:
                m = frame_re.match(frame)
                if m is None:
                    continue
                where = m.group(2).split("site-packages/")[-1].replace(str(ROOT) + "/", "")
                names.add(f"{m.group(1)} ({where})")
            for name in names:
                inclusive[name] += count
    if not total:
        return ["(no samples)"]
    lines = [
        f"{total} samples with the GIL; by thread: "
        + ", ".join(f"{t} {100 * c / total:.0f} %" for t, c in threads.most_common(5))
    ]
    skip = ("Thread.", "Client._thread_main", "Client.loop_forever", "BatchWriter._run")
    lines += [
        f"{100 * c / total:5.1f} %  {name}"
        for name, c in inclusive.most_common(top + 10)
        if not name.startswith(skip)
    ][:top]
    return lines


# --- the rounds --------------------------------------------------------------------------------


@dataclass
class Figures:
    paho: list[float] = field(default_factory=list)
    sub: list[float] = field(default_factory=list)
    service: list[float] = field(default_factory=list)
    # CPU µs per message: the receiver's own; the service's own and PostgreSQL's for it
    paho_cpu: list[float] = field(default_factory=list)
    sub_cpu: list[float] = field(default_factory=list)
    service_cpu: list[float] = field(default_factory=list)
    postgres_cpu: list[float] = field(default_factory=list)

    def ratios(self) -> list[float]:
        """Service against the bare paho run just before it, round by round."""
        return [s / p for s, p in zip(self.service, self.paho, strict=False)]

    def bracketed(self) -> list[float]:
        """Service against the mean of the bare paho runs just before and just after it (the
        machine's speed drifts within a round; as raw COPY brackets each gateway round)."""
        return [s / ((a + b) / 2) for s, a, b in zip(self.service, self.paho, self.paho[1:], strict=False)]


def span(values: Sequence[float]) -> str:
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    return f"{lo:,.0f}" if round(lo) == round(hi) else f"{lo:,.0f}-{hi:,.0f}"


class CpuMeter:
    """Where the CPU went during a measurement, in CPU seconds: the service's processes, the
    broker, PostgreSQL's backends serving the benchmark's database, the publishers (children of
    this process that exited), and everything else on the machine (other users' work: noise)."""

    def __init__(self, service_pid: int, database: str) -> None:
        self.service_pid = service_pid
        self.database = database

    def _snapshot(self) -> dict[str, float]:
        def cpu(p: psutil.Process) -> float:
            try:
                t = p.cpu_times()
                return float(t.user + t.system)
            except psutil.Error:
                return 0.0

        root = psutil.Process(self.service_pid)
        service = {f"service {p.pid}": cpu(p) for p in [root, *root.children(recursive=True)]}
        backends = 0.0
        for p in psutil.process_iter(["name", "cmdline"]):
            line = " ".join(p.info["cmdline"] or [])
            if line.startswith("postgres:") and f" {self.database} " in f"{line} ":
                backends += cpu(p)
        machine = psutil.cpu_times()
        children = os.times()
        return {
            **service,
            "broker": sum(cpu(psutil.Process(pid)) for pid in BROKER_PIDS if psutil.pid_exists(pid)),
            "postgres backends": backends,
            "publishers": children.children_user + children.children_system,
            "machine busy": machine.user
            + machine.system
            + machine.nice
            + getattr(machine, "irq", 0.0)
            + getattr(machine, "softirq", 0.0),
            "machine idle": machine.idle + getattr(machine, "iowait", 0.0),
        }

    @contextmanager
    def measure(self) -> Iterator[dict[str, float]]:
        """Yields a dict that holds, once the block ends, CPU seconds per part and wall seconds."""
        out: dict[str, float] = {}
        before, t0 = self._snapshot(), time.monotonic()
        yield out
        after, wall = self._snapshot(), time.monotonic() - t0
        for key in after:
            out[key] = round(after[key] - before.get(key, 0.0), 2)
        ours = sum(v for k, v in out.items() if k not in ("machine busy", "machine idle"))
        out["others on the machine"] = round(max(out["machine busy"] - ours, 0.0), 2)
        out["wall"] = round(wall, 2)


def cpu_line(cpu: dict[str, float]) -> str:
    wall = cpu["wall"] or 1.0
    parts = [f"{k} {v / wall:.2f}" for k, v in cpu.items() if k not in ("wall", "machine busy")]
    return "cores busy (CPU s / wall s): " + ", ".join(parts)


def throughput_rounds(
    args: argparse.Namespace,
    mode: str,
    port: int,
    commits: Commits,
    proc: Any,
    devices: list[str],
    seq: list[int],
    tmp: Path,
    profiler: Profiler,
    meter: CpuMeter,
) -> dict[str, Any]:
    figures = Figures()
    cpus: list[dict[str, float]] = []
    pids = workers_of(proc, args.workers)

    def bare_load() -> Load:
        if mode == "burst":
            return burst_load(0, args.messages, args.malformed)
        return stream_load(0, args.messages, devices)

    for r in range(args.repeat):
        load = bare_load()
        rate, cpu_us = bare_paho(port, args.protocol, load, args.publisher, tmp)
        figures.paho.append(rate)
        figures.paho_cpu.append(cpu_us)
        rate, cpu_us = bare_mosquitto_sub(port, args.protocol, load, args.publisher, tmp)
        figures.sub.append(rate)
        figures.sub_cpu.append(cpu_us)
        start = seq[0]
        load = (
            burst_load(start, args.messages, args.malformed)
            if mode == "burst"
            else stream_load(start, args.messages, devices)
        )
        seq[0] += args.messages
        with profiler.record(pids, f"{mode}-{r}"), meter.measure() as cpu:
            first = publish_load(port, args.protocol, PREFIX, load, args.publisher, tmp)
            last = commits.wait_for(load.readings, 600)
        cpus.append(cpu)
        figures.service.append(load.messages / (last - first))
        figures.service_cpu.append(
            1e6 * sum(v for k, v in cpu.items() if k.startswith("service")) / load.messages
        )
        figures.postgres_cpu.append(1e6 * cpu["postgres backends"] / load.messages)
        print(
            f"    round {r + 1}: bare paho {figures.paho[-1]:,.0f}, mosquitto_sub {figures.sub[-1]:,.0f},"
            f" service {figures.service[-1]:,.0f} msg/s ({figures.service[-1] / figures.paho[-1]:.2f} of"
            f" paho)",
            flush=True,
        )
        print(f"      {cpu_line(cpu)}", flush=True)
        print(
            f"      CPU per message: bare paho {figures.paho_cpu[-1]:.0f} µs, mosquitto_sub"
            f" {figures.sub_cpu[-1]:.0f} µs, service {figures.service_cpu[-1]:.0f} µs"
            f" (+ PostgreSQL {figures.postgres_cpu[-1]:.0f} µs)",
            flush=True,
        )
    # bare paho once more after the last round: each service round is bracketed by two
    rate, cpu_us = bare_paho(port, args.protocol, bare_load(), args.publisher, tmp)
    figures.paho.append(rate)
    figures.paho_cpu.append(cpu_us)
    print(f"    after the last round: bare paho {rate:,.0f} msg/s ({cpu_us:.0f} µs a message)", flush=True)
    ratios = figures.ratios()
    bracketed = figures.bracketed()
    best = max(figures.service) / max(figures.paho)
    print(
        f"  {mode}: bare paho {span(figures.paho)}, mosquitto_sub {span(figures.sub)}, service"
        f" {span(figures.service)} msg/s; service/paho per round {min(ratios):.2f}-{max(ratios):.2f}"
        f" (paho before and after each round, averaged: {min(bracketed):.2f}-{max(bracketed):.2f}),"
        f" best against best {best:.2f}",
        flush=True,
    )
    return {
        "paho_msg_s": [round(v) for v in figures.paho],
        "mosquitto_sub_msg_s": [round(v) for v in figures.sub],
        "service_msg_s": [round(v) for v in figures.service],
        "service_vs_paho": [round(v, 3) for v in ratios],
        "service_vs_paho_before_and_after": [round(v, 3) for v in bracketed],
        "best_vs_best": round(best, 3),
        "cpu_us_per_message": {
            "paho": [round(v) for v in figures.paho_cpu],
            "mosquitto_sub": [round(v) for v in figures.sub_cpu],
            "service": [round(v) for v in figures.service_cpu],
            "postgres_backends": [round(v) for v in figures.postgres_cpu],
        },
        "cpu_seconds_per_round": cpus,
    }


def latency(
    args: argparse.Namespace,
    mode: str,
    port: int,
    commits: Commits,
    devices: list[str],
    seq: list[int],
    seconds: float,
    rss: RssSampler | None = None,
) -> dict[str, Any]:
    n = int(args.rate * seconds)
    start = seq[0]
    seq[0] += n
    load = burst_load(start, n, 0) if mode == "burst" else stream_load(start, n, devices)
    minutes: list[dict[str, Any]] = []

    def on_minute(at: float, published: dict[int, float]) -> None:
        with commits.lock:
            recent = [
                commits.at[s] - t
                for s, t in list(published.items())[-int(args.rate * 60) :]
                if s in commits.at
            ]
        mark = {
            "minute": round(at / 60),
            "rss_mib": {str(p): round(v, 1) for p, v in (rss.latest_mib() if rss else {}).items()},
            "p99_ms": ms(pct(recent, 99)) if recent else None,
        }
        minutes.append(mark)
        print(
            f"      minute {mark['minute']}: RSS {mark['rss_mib']} MiB, p99 {mark['p99_ms']} ms", flush=True
        )

    published = paced_publish(port, args.protocol, PREFIX, load, args.rate, on_minute if rss else None)
    commits.wait_for(load.readings, 300)
    lat = [commits.at[s] - t for s, t in published.items()]
    out = {
        "rate_msg_s": args.rate,
        "seconds": seconds,
        "p50_ms": ms(pct(lat, 50)),
        "p99_ms": ms(pct(lat, 99)),
        "max_ms": ms(max(lat)),
        "mean_ms": ms(statistics.fmean(lat)),
    }
    if minutes:
        out["by_minute"] = minutes
    return out


def copy_ceiling(
    url: str, rows: int, chunk: int, start: int, meter: CpuMeter
) -> tuple[float, dict[str, float]]:
    """Raw COPY of ``rows`` heart-rate rows into ``readings`` (device C0), a commit per ``chunk``:
    (rows/s, CPU µs per row of PostgreSQL's backend and of this client)."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO devices (id, clinic_id, type) VALUES ('C0', 'default', 'x') ON CONFLICT DO NOTHING"
        )
        patient = conn.execute("SELECT patient_id FROM device_assignments WHERE device_id = 'B0'").fetchone()
        assert patient is not None
        conn.commit()
        data = [
            (
                "C0",
                "heart_rate",
                BASE + timedelta(milliseconds=s),
                patient[0],
                float(60 + s % 40),
                "/min",
                float(60 + s % 40),
                "/min",
                "{}",
            )
            for s in range(start, start + rows)
        ]
        client0 = time.process_time()
        with meter.measure() as cpu:  # the connection's backend lives across the measurement
            t0 = time.perf_counter()
            for i in range(0, rows, chunk):
                with (
                    conn.cursor() as cur,
                    cur.copy(
                        "COPY readings (device_id, metric, measured_at, patient_id, value, unit,"
                        " original_value, original_unit, status) FROM STDIN"
                    ) as copy,
                ):
                    for row in data[i : i + chunk]:
                        copy.write_row(row)
                conn.commit()
            rate = rows / (time.perf_counter() - t0)
        return rate, {
            "copy_postgres_us": 1e6 * cpu["postgres backends"] / rows,
            "copy_client_us": 1e6 * (time.process_time() - client0) / rows,
        }


def gateway_mode(
    args: argparse.Namespace,
    port: int,
    commits: Commits,
    url: str,
    seq: list[int],
    tmp: Path,
    pids: Sequence[int],
    profiler: Profiler,
    meter: CpuMeter,
) -> dict[str, Any]:
    rows = args.gateway_messages * args.gateway_batch
    copies, services = [], []
    cpu_lines: list[dict[str, float]] = []

    def timed_copy(start: int) -> float:
        rate, cpu = copy_ceiling(url, rows, args.copy_chunk, start, meter)
        cpu_lines.append(cpu)
        return rate

    for r in range(args.repeat):
        copies.append(timed_copy(10_000_000_000 + r * rows))
        start = seq[0]
        seq[0] += rows
        load = gateway_load(start, args.gateway_messages, args.gateway_batch)
        with profiler.record(pids, f"gateway-{r}"), meter.measure() as cpu:
            first = publish_load(port, args.protocol, PREFIX, load, args.publisher, tmp)
            last = commits.wait_for(load.readings, 600)
            curve = commits.curve(load.readings, first)
        services.append(rows / (last - first))
        service_us = 1e6 * sum(v for k, v in cpu.items() if k.startswith("service")) / rows
        postgres_us = 1e6 * cpu["postgres backends"] / rows
        cpu_lines[-1].update(service_us=service_us, service_postgres_us=postgres_us)
        print(
            f"    round {r + 1}: raw COPY {copies[-1]:,.0f} rows/s, service {services[-1]:,.0f} readings/s"
            f" ({services[-1] / copies[-1]:.2f} of COPY)",
            flush=True,
        )
        print(f"      {cpu_line(cpu)}", flush=True)
        print(f"      {curve}", flush=True)
        print(
            f"      CPU per reading: service {service_us:.1f} µs + PostgreSQL {postgres_us:.1f} µs;"
            f" raw COPY: PostgreSQL {cpu_lines[-1]['copy_postgres_us']:.1f} µs"
            f" + client {cpu_lines[-1]['copy_client_us']:.1f} µs",
            flush=True,
        )
    copies.append(timed_copy(20_000_000_000))
    ratios = [s / ((a + b) / 2) for s, a, b in zip(services, copies, copies[1:], strict=False)]
    print(
        f"  gateway: raw COPY {span(copies)} rows/s, service {span(services)} readings/s; service/COPY"
        f" (COPY before and after each round, averaged) {min(ratios):.2f}-{max(ratios):.2f}",
        flush=True,
    )
    return {
        "messages": args.gateway_messages,
        "readings_per_message": args.gateway_batch,
        "copy_rows_per_commit": args.copy_chunk,
        "copy_rows_s": [round(v) for v in copies],
        "service_readings_s": [round(v) for v in services],
        "service_vs_copy": [round(v, 3) for v in ratios],
        "cpu_us_per_reading": [{k: round(v, 1) for k, v in c.items()} for c in cpu_lines],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["burst", "stream", "gateway", "all"], default="all")
    ap.add_argument("--messages", type=int, default=20_000, help="readings per round (burst, stream)")
    ap.add_argument("--malformed", type=int, default=200, help="burst: bad payloads before the readings")
    ap.add_argument("--devices", type=int, default=100, help="stream: devices, one publisher each")
    ap.add_argument("--repeat", type=int, default=2, help="rounds, alternating bare receivers and service")
    ap.add_argument("--workers", type=int, choices=[1, 2, 3], default=1, help="serve --workers N")
    ap.add_argument("--publisher", choices=["mosquitto_pub", "paho"], default="mosquitto_pub")
    ap.add_argument("--rate", type=float, default=1000.0, help="messages/s for latency and the soak")
    ap.add_argument("--latency-seconds", type=float, default=20.0)
    ap.add_argument("--soak", type=float, default=0.0, help="seconds of sustained --rate (stream)")
    ap.add_argument("--gateway-messages", type=int, default=1000)
    ap.add_argument("--gateway-batch", type=int, default=100)
    ap.add_argument("--copy-chunk", type=int, default=10_000, help="gateway: raw COPY rows per commit")
    ap.add_argument("--protocol", choices=["5", "3.1.1"], default="5")
    ap.add_argument("--profile", type=Path, default=None, help="py-spy the service into this directory")
    ap.add_argument(
        "--service-from",
        type=Path,
        default=None,
        help="run the service from this checkout (e.g. `git archive <rev> | tar -x -C DIR`): before/after",
    )
    args = ap.parse_args()
    logging.getLogger("devices.mqtt").setLevel(logging.CRITICAL)
    modes = ["burst", "stream", "gateway"] if args.mode == "all" else [args.mode]

    load_before = os.getloadavg()
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average_at_start": [round(v, 2) for v in load_before],
        "workers": args.workers,
        "publisher": args.publisher,
        "messages": args.messages,
        "protocol": args.protocol,
    }
    devices = device_ids(args.devices)
    profiler = Profiler(args.profile)
    seq = [0]  # the next sequence number for the service (one per reading)
    with (
        tempfile.TemporaryDirectory(prefix="bench-mqtt-") as tmp_name,
        mosquitto(Path(tmp_name)) as port,
        database(devices, args.service_from) as url,
    ):
        tmp = Path(tmp_name)
        data = tmp / "data"
        data.mkdir()
        commits = Commits(url)
        with service(url, port, args.protocol, data, args.workers, args.service_from) as proc:
            rss = RssSampler(proc.pid)
            meter = CpuMeter(proc.pid, urlsplit(url).path.lstrip("/"))
            for mode in modes:
                print(
                    f"{mode}: {args.workers} service process(es), publisher {args.publisher} ...", flush=True
                )
                if mode == "gateway":
                    results[mode] = gateway_mode(
                        args, port, commits, url, seq, tmp, workers_of(proc, args.workers), profiler, meter
                    )
                    continue
                results[mode] = throughput_rounds(
                    args, mode, port, commits, proc, devices, seq, tmp, profiler, meter
                )
                if args.latency_seconds > 0:
                    lat = latency(args, mode, port, commits, devices, seq, args.latency_seconds)
                    results[mode]["latency"] = lat
                    print(
                        f"  {mode} latency at {args.rate:.0f} msg/s: p50 {lat['p50_ms']} ms,"
                        f" p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms",
                        flush=True,
                    )
            if args.soak > 0:
                print(
                    f"soak: {args.rate:.0f} msg/s over {args.devices} devices for {args.soak:.0f} s ...",
                    flush=True,
                )
                results["soak"] = latency(args, "stream", port, commits, devices, seq, args.soak, rss)
                print(
                    f"  soak p50 {results['soak']['p50_ms']} ms, p99 {results['soak']['p99_ms']} ms",
                    flush=True,
                )
            rss.stop()
            peak = rss.peak_mib()
            results["peak_rss_mib"] = {str(pid): round(v, 1) for pid, v in peak.items()}
            print(f"peak RSS (MiB) per process: {results['peak_rss_mib']}", flush=True)
        commits.close()
    results["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    if profiler.files:
        summary = flame_summary(profiler.files)
        results["flame"] = summary
        print("flame summary (share of samples holding the GIL, inclusive):")
        for line in summary:
            print("  " + line)
    print(json.dumps(results))


if __name__ == "__main__":
    main()

"""Real ``rpm-ingest serve`` processes for the tests across processes: one ``serve --workers N``
(a parent and its N worker processes) or lone ``serve`` replicas, on a broker and a database of
the test's own; bursts published with ``mosquitto_pub -l``; what reached the database.

Readiness of N workers is read from the shared log (each worker logs "MQTT subscribed to" once
its share of the group is live), since ``/readyz`` on the shared port answers for one of them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from tests.support.service import free_port
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
RPM_INGEST = Path(sys.executable).with_name("rpm-ingest")
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
SUBSCRIBED = "MQTT subscribed to"
DEVICE = "OX-W1"  # the device of the patient the tests across processes register
BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def service_environment(
    db_url: str, broker_url: str, prefix: str, workdir: Path, **extra: str
) -> dict[str, str]:
    """The environment of a ``serve`` in a shared group: this test's database, broker and topics."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPM_")}
    env["PYTHONPATH"] = str(ROOT)  # this checkout's packages, whatever the venv was installed from
    group = prefix.split("/")[0].replace("test-", "g-")
    env.update(
        RPM_DATABASE_URL=db_url,
        RPM_MQTT_URL=broker_url,
        RPM_MQTT_TOPIC_PREFIX=prefix,
        RPM_MQTT_SHARED_GROUP=group,
        RPM_MQTT_CLIENT_ID=f"w-{group}",
        RPM_MQTT_SESSION_EXPIRY_S="600",
        RPM_HTTP_PORT=str(free_port()),
        RPM_DATA_DIR=str(workdir),
        RPM_LOG_LEVEL="INFO",
        RPM_RATE_LIMIT_PER_MINUTE="0",
        RPM_ALERT_SCHEDULER_INTERVAL_S="3600",
    )
    env.update(extra)
    return env


class Serve:
    """One ``rpm-ingest serve`` command (with ``--workers N`` or alone), its log in a file."""

    def __init__(self, env: Mapping[str, str], log: Path, *, workers: int = 1) -> None:
        self.env = dict(env)
        self.log = log
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None
        self._log_start = 0

    @property
    def port(self) -> int:
        return int(self.env["RPM_HTTP_PORT"])

    def start(self, timeout_s: float = 90) -> None:
        self._log_start = self.log.stat().st_size if self.log.exists() else 0
        args = [str(RPM_INGEST), "serve"]
        if self.workers > 1:
            args += ["--workers", str(self.workers)]
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(args, env=self.env, stdout=out, stderr=out)
        self.wait_subscribed(self.workers, timeout_s)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[self._log_start :]

    def wait_subscribed(self, count: int, timeout_s: float = 90) -> None:
        """Wait until ``count`` subscriptions were logged since this start."""

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited: {self.log_text()[-3000:]}")
            return self.log_text().count(SUBSCRIBED) >= count

        wait_until(ready, timeout_s, f"{count} MQTT subscriptions of the workers")

    def worker_pids(self) -> list[int]:
        """The parent's children (its workers), in start order."""
        assert self.process is not None
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(p) for p in path.read_text().split()]

    def signal(self, sig: int, timeout_s: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = self.process.wait(timeout_s)
        self.process = None
        return code

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                self.signal(signal.SIGTERM)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None


@contextmanager
def serving(env: Mapping[str, str], log: Path, *, workers: int = 1) -> Iterator[Serve]:
    """A started ``serve`` (stopped with SIGTERM on the way out)."""
    service = Serve(env, log, workers=workers)
    try:
        service.start()
        yield service
    finally:
        service.stop()


def wait_gone(pid: int, timeout_s: float = 60) -> None:
    def gone() -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except FileNotFoundError:
            return True
        return state == "Z"  # exited, not yet reaped by its parent

    wait_until(gone, timeout_s, f"process {pid} to exit")


# --- readings and bursts


def measured_at(i: int) -> datetime:
    return BASE + timedelta(milliseconds=i)


def reading_line(i: int, value: float | None = None) -> str:
    """One valid heart-rate reading on one line, unique per ``i``."""
    body = {
        "metric": "heart_rate",
        "value": 60 + i % 40 if value is None else value,
        "unit": "/min",
        "measured_at": measured_at(i).isoformat().replace("+00:00", "Z"),
    }
    return json.dumps(body)


def start_burst(
    port: int, topic: str, first: int, count: int, *, value: float | None = None
) -> subprocess.Popen[bytes]:
    """``mosquitto_pub -l`` publishing readings ``first..first+count-1`` at QoS 1 (background)."""
    process = subprocess.Popen(
        [MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", topic, "-l",
         "-i", f"pub-{first}-{time.monotonic_ns()}"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdin is not None
    lines = "".join(reading_line(i, value) + "\n" for i in range(first, first + count))
    process.stdin.write(lines.encode())
    process.stdin.close()
    return process


def finish(process: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    code = process.wait(timeout_s)
    stderr = process.stderr.read().decode() if process.stderr else ""
    assert code == 0, f"mosquitto_pub failed: {stderr}"


def publish(port: int, topic: str, first: int, count: int, *, value: float | None = None) -> None:
    finish(start_burst(port, topic, first, count, value=value))


def stored(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM readings").fetchone()
    assert row is not None
    return int(row[0])


def wait_stored(db_url: str, n: int, timeout_s: float = 180) -> None:
    wait_until(lambda: stored(db_url) >= n, timeout_s, f"{n} readings stored")


def assert_each_once(db_url: str, device_id: str, indexes: range) -> None:
    """Exactly the readings ``indexes`` of ``device_id``, each once; no dead letters."""
    time.sleep(0.5)  # a late duplicate would show up as a surplus (it cannot: the key is unique)
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT device_id, measured_at FROM readings").fetchall()
        dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
    expected = {(device_id, measured_at(i)) for i in indexes}
    got = [(d, t) for d, t in rows]
    assert len(got) == len(set(got)), "a reading stored twice"
    missing = expected - set(got)
    assert not missing, f"{len(missing)} of {len(expected)} readings missing"
    assert set(got) == expected
    assert dead is not None and dead[0] == 0

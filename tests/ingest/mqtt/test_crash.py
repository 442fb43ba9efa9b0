"""The real service (`rpm-ingest serve`, a subprocess) killed with SIGKILL, or stopped with SIGTERM,
in the middle of a burst of QoS 1 readings, then started again: every reading stored exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
from psycopg_pool import ConnectionPool

from devices.mqtt.publisher import Publisher
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_ingest import (
    count_readings,
    dead_letters,
    measured_at,
    publisher_options,
    reading,
    register,
    topic,
)
from tests.support.service import free_port
from tests.support.waiting import wait_until

DEVICES = [f"OX-K{i}" for i in range(10)]


class ServeProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.port = int(env["RPM_HTTP_PORT"])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        rpm_ingest = Path(sys.executable).with_name("rpm-ingest")
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen([str(rpm_ingest), "serve"], env=self.env, stdout=out, stderr=out)
        url = f"http://127.0.0.1:{self.port}/readyz"

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited: {self.log.read_text()[-3000:]}")
            try:
                return httpx.get(url, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 60, "the service to be ready (database and broker)")

    def signal(self, sig: int) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = self.process.wait(60)
        self.process = None
        return code

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.signal(signal.SIGTERM)


@contextmanager
def serve(db_url: str, broker: Mosquitto, prefix: str, tmp_path: Path) -> Iterator[ServeProcess]:
    env = {
        **os.environ,
        "RPM_DATABASE_URL": db_url,
        "RPM_MQTT_URL": broker.url,
        "RPM_MQTT_TOPIC_PREFIX": prefix,
        "RPM_MQTT_CLIENT_ID": f"crash-{prefix.split('/')[0]}",
        "RPM_HTTP_PORT": str(free_port()),
        "RPM_DATA_DIR": str(tmp_path / "data"),
        "RPM_LOG_LEVEL": "INFO",
    }
    process = ServeProcess(env, tmp_path / "serve.log")
    try:
        yield process
    finally:
        process.stop()


def burst_in_background(pub: Publisher, prefix: str, n: int) -> threading.Thread:
    def run() -> None:
        for i in range(n):
            pub.publish(topic(prefix, DEVICES[i % len(DEVICES)]), reading(i), timeout_s=120)

    thread = threading.Thread(target=run, name="burst")
    thread.start()
    return thread


def assert_all_stored_once(db_url: str, n: int) -> None:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT device_id, measured_at FROM readings").fetchall()
    assert len(rows) == n
    expected = {(DEVICES[i % len(DEVICES)], measured_at(i)) for i in range(n)}
    assert {(d, t) for d, t in rows} == expected
    assert dead_letters(db_url) == []


def crash_mid_burst(
    n: int, db_url: str, pool: ConnectionPool, prefix: str, broker: Mosquitto, tmp_path: Path
) -> None:
    register(pool, DEVICES)
    with serve(db_url, broker, prefix, tmp_path) as service:
        service.start()
        with Publisher(publisher_options(broker.url, client_id="crash-pub"), max_pending=1000) as pub:
            burst = burst_in_background(pub, prefix, n)
            wait_until(lambda: count_readings(db_url) >= n // 5, 120, "a fifth of the burst stored")
            assert service.signal(signal.SIGKILL) == -signal.SIGKILL
            stored_at_kill = count_readings(db_url)
            assert stored_at_kill < n, "the kill must land in the middle of the burst"
            service.start()
            burst.join(120)
            assert not burst.is_alive()
            assert pub.flush(60)
            wait_until(lambda: count_readings(db_url) >= n, 180, f"all {n} readings after the restart")
            time.sleep(0.5)  # anything redelivered late would show up as a surplus (it cannot)
    assert_all_stored_once(db_url, n)


def test_sigkill_mid_burst_of_5000_then_restart(
    db_url: str, pool: ConnectionPool, topic_prefix: str, own_broker: Mosquitto, tmp_path: Path
) -> None:
    # SIGKILL lands at once: a fifth stored, the rest in the publisher, the broker or the
    # consumer's hands, as with a larger burst.
    crash_mid_burst(5000, db_url, pool, topic_prefix, own_broker, tmp_path)


def test_sigterm_mid_burst_stops_cleanly(
    db_url: str, pool: ConnectionPool, topic_prefix: str, own_broker: Mosquitto, tmp_path: Path
) -> None:
    # Large enough that the stop lands mid-burst even on a loaded machine (a clean stop first
    # commits and acknowledges what the consumer already holds).
    n = 10_000
    register(pool, DEVICES)
    with serve(db_url, own_broker, topic_prefix, tmp_path) as service:
        service.start()
        with Publisher(publisher_options(own_broker.url, client_id="term-pub"), max_pending=1000) as pub:
            burst = burst_in_background(pub, topic_prefix, n)
            wait_until(lambda: count_readings(db_url) >= n // 10, 120, "a tenth of the burst stored")
            assert service.signal(signal.SIGTERM) == 0, "a clean stop exits 0"
            assert count_readings(db_url) < n, "the stop must land in the middle of the burst"
            log = service.log.read_text()
            assert "MQTT consumer" in log and "disconnected" in log
            service.start()
            burst.join(120)
            assert pub.flush(60)
            wait_until(lambda: count_readings(db_url) >= n, 180, f"all {n} readings after the restart")
            time.sleep(0.5)
    assert_all_stored_once(db_url, n)

"""The ``rpm-ingest gateway`` process: killed with SIGKILL while publishing, restarted, nothing
lost; stops cleanly on SIGTERM; its help documents a BlueZ home hub; bad options are refused."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from devices.errors import QueueStorageError
from devices.gateway.queue_store import QueueStore
from devices.gateway.runner import QUEUE_FILE
from ingest.cli import cli
from tests.support.gateway import Subscriber, entries
from tests.support.mosquitto import Mosquitto
from tests.support.tcpproxy import TcpProxy
from tests.support.waiting import wait_until

N = 1000


@pytest.fixture(autouse=True)
def _keep_root_logging() -> Iterator[None]:
    """The command configures logging for a process; put the test process's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def gateway_process(data_dir: Path, url: str, prefix: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ingest", "gateway", "--drain-only", "--data-dir", str(data_dir),
         "--mqtt-url", url, "--topic-prefix", prefix, "--gateway-id", "hub-kill",
         "--log-level", "WARNING"],
        stdout=subprocess.DEVNULL,
        stderr=open(data_dir / "gateway.log", "ab"),  # noqa: SIM115 - owned by the process
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def queued_readings(data_dir: Path) -> int:
    """Read the queue as an outsider (the gateway process holds the queue's lock)."""
    db = sqlite3.connect(f"file:{data_dir / QUEUE_FILE}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT COALESCE(SUM(n_readings), 0) FROM queue").fetchone()[0])
    finally:
        db.close()


def slow_acks(_link: object, direction: str, data: bytes) -> bytes:
    """Hold each broker-to-gateway chunk (PUBACKs) a moment, so a drain takes a while."""
    if direction == "s2c":
        time.sleep(0.003)
    return data


def test_sigkill_while_publishing_then_restart_loses_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "hub"
    store = QueueStore(data_dir / QUEUE_FILE, max_bytes=64 * 2**20)
    devices = tuple(f"DEV{i:04d}" for i in range(N))  # one message per reading
    store.enqueue(entries(N, devices=devices), now=datetime.now(UTC))
    store.close()
    expected = {(e.device_id, e.readings[0]["measured_at"]) for e in entries(N, devices=devices)}

    with Mosquitto(tmp_path / "broker") as broker, TcpProxy(
        "127.0.0.1", broker.port, tap=slow_acks
    ) as proxy, Subscriber(broker.url, "kill/+/readings", persistent=True) as sub:
        url = f"mqtt://127.0.0.1:{proxy.port}"
        first = gateway_process(data_dir, url, "kill")
        try:
            sub.wait_for(200, timeout=30)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        after_kill = len(sub.readings())
        queued = queued_readings(data_dir)
        assert 0 < queued < N, f"{queued} queued after the kill; {after_kill} arrived"

        second = gateway_process(data_dir, url, "kill")
        try:
            sub.wait_for(N, timeout=90)
            wait_until(lambda: queued_readings(data_dir) == 0, 30, "the queue drained")
            with pytest.raises(QueueStorageError, match="in use by another gateway"):
                QueueStore(data_dir / QUEUE_FILE, max_bytes=2**20)
            twin = CliRunner().invoke(
                cli, ["gateway", "--drain-only", "--data-dir", str(data_dir), "--mqtt-url", url]
            )
            assert twin.exit_code == 1 and "in use by another gateway" in twin.output
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(20) == 0  # a clean stop on SIGTERM
        received = [(r["device_id"], r["measured_at"]) for r in sub.readings()]
    assert set(received) == expected  # nothing lost
    # a message acknowledged by the broker but not yet deleted when killed is sent again;
    # the service absorbs it (natural key). At most the in-flight window repeats.
    assert len(received) - N <= 20 * 2


def test_help_explains_running_on_a_bluez_home_hub() -> None:
    result = CliRunner().invoke(cli, ["gateway", "--help"])
    assert result.exit_code == 0
    for words in ("BlueZ", "bluetoothctl", "--device", "RPM_MQTT_URL", "SIGTERM", "--scan",
                  "--emulate", "gateway-queue.sqlite3"):
        assert words in result.output


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        ([], "--device"),
        (["--device", "not-an-address"], "not a Bluetooth address"),
        (["--device", "AA:BB:CC:DD:EE:FF=bad id!"], "not a device id"),
        (["--device", "AA:BB:CC:DD:EE:FF", "--mqtt-url", "http://x"], "mqtt://"),
        (["--device", "AA:BB:CC:DD:EE:FF", "--mqtt-url", "mqtt://:99999"], "broker URL"),
        (["--device", "AA:BB:CC:DD:EE:FF", "--timezone", "Mars/Olympus"], "time zone"),
        (["--device", "AA:BB:CC:DD:EE:FF", "--max-queue-mb", "0"], "max-queue-mb"),
    ],
)
def test_bad_options_are_refused_with_a_reason(args: list[str], complaint: str) -> None:
    result = CliRunner().invoke(cli, ["gateway", *args])
    assert result.exit_code == 2
    assert complaint in result.output

"""The parent of ``serve --workers N`` with real child processes (small Python programs that
record their start and stop), the replica names, and the settings ``--workers`` refuses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ingest.cli import cli
from ingest.errors import ConfigurationError
from ingest.mqtt.config import consumer_client_id
from ingest.settings import Settings
from ingest.workers.identity import worker_environment, worker_replica
from ingest.workers.supervisor import Supervisor, describe_exit, listening_socket
from tests.support.waiting import wait_until

# A worker: notes "<index> <pid> start" in a file, exits 0 on SIGTERM (noting "stop").
CHILD = """
import os, signal, sys, time
path, index = sys.argv[1], os.environ["RPM_REPLICA"]
def note(what):
    with open(path, "a") as f:
        f.write(f"{index} {os.getpid()} {what}\\n")
def stop(*_):
    note("stop")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
note("start")
while True:
    time.sleep(0.05)
"""


def notes(path: Path) -> list[tuple[str, int, str]]:
    if not path.exists():
        return []
    return [(i, int(pid), what) for i, pid, what in (line.split() for line in path.read_text().splitlines())]


def started(path: Path) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for index, pid, what in notes(path):
        if what == "start":
            found.setdefault(index, []).append(pid)
    return found


def supervisor(path: Path, count: int) -> Supervisor:
    return Supervisor(
        count,
        command=lambda _i: [sys.executable, "-c", CHILD, str(path)],
        environment=lambda i: worker_environment(None, i),
        restart_min_s=0.1,
        restart_max_s=0.2,
    )


def run_with(sup: Supervisor, actions: threading.Thread) -> int:
    actions.start()
    try:
        return sup.run()  # in the main thread: it installs the signal handlers
    finally:
        actions.join(30)


def test_a_killed_worker_is_started_again_under_its_index_and_stop_stops_all(tmp_path: Path) -> None:
    path = tmp_path / "notes"
    sup = supervisor(path, 3)

    def actions() -> None:
        wait_until(lambda: len(started(path)) == 3, 30, "three workers")
        victim = started(path)["1"][0]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: len(started(path)["1"]) == 2, 30, "worker 1 started again")
        sup.stop()

    assert run_with(sup, threading.Thread(target=actions)) == 0
    runs = started(path)
    assert {k: len(v) for k, v in runs.items()} == {"0": 1, "1": 2, "2": 1}
    stopped = {pid for _, pid, what in notes(path) if what == "stop"}
    assert stopped == {runs["0"][0], runs["1"][1], runs["2"][0]}  # every live worker stopped cleanly


def test_a_worker_stopped_on_its_own_signal_is_not_started_again(tmp_path: Path) -> None:
    path = tmp_path / "notes"
    sup = supervisor(path, 2)

    def actions() -> None:
        wait_until(lambda: len(started(path)) == 2, 30, "two workers")
        os.kill(started(path)["0"][0], signal.SIGTERM)  # scale down by one
        wait_until(lambda: sup.pids[0] is None, 30, "worker 0 gone")
        assert sup.pids[1] is not None
        os.kill(started(path)["1"][0], signal.SIGTERM)  # the last one: the parent ends too

    assert run_with(sup, threading.Thread(target=actions)) == 0
    assert {k: len(v) for k, v in started(path).items()} == {"0": 1, "1": 1}


def test_a_worker_ended_by_sigterm_before_handling_it_is_not_started_again() -> None:
    """A worker still starting up has no handler yet: SIGTERM ends it, and that was a stop too."""
    sup = Supervisor(
        1,
        command=lambda _i: [sys.executable, "-c", "import time; time.sleep(60)"],
        environment=lambda i: worker_environment(None, i),
        restart_min_s=0.1,
    )

    def actions() -> None:
        wait_until(lambda: sup.pids[0] is not None, 30, "the worker")
        pid = sup.pids[0]
        assert pid is not None
        os.kill(pid, signal.SIGTERM)

    assert run_with(sup, threading.Thread(target=actions)) == 0  # returns: nothing left to run
    assert sup.pids == [None]


def test_sigterm_to_the_parent_is_forwarded_to_every_worker(tmp_path: Path) -> None:
    path = tmp_path / "notes"
    sup = supervisor(path, 2)

    def actions() -> None:
        wait_until(lambda: len(started(path)) == 2, 30, "two workers")
        os.kill(os.getpid(), signal.SIGTERM)  # the test process is the parent here

    assert run_with(sup, threading.Thread(target=actions)) == 0
    assert sorted(i for i, _, what in notes(path) if what == "stop") == ["0", "1"]
    assert signal.getsignal(signal.SIGTERM) is not sup._on_signal  # handlers put back


def test_workers_share_the_parents_socket(tmp_path: Path) -> None:
    sock = listening_socket("127.0.0.1", 0)
    try:
        assert sock.get_inheritable()
        port = sock.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # listening already, before any worker runs: connections queue in the backlog
    finally:
        sock.close()


def test_replica_names_and_client_ids(settings: Settings) -> None:
    assert worker_replica(None, 2) == "2"
    assert worker_replica("eu-1", 0) == "eu-1-0"
    assert worker_replica("hostname", 1) == f"{socket.gethostname()}-1"
    assert worker_environment(None, 3) == {"RPM_REPLICA": "3", "RPM_WORKERS": "1"}
    assert consumer_client_id(settings) == settings.mqtt_client_id  # a lone process: unchanged
    named = settings.model_copy(update={"replica": "b"})
    assert consumer_client_id(named) == f"{settings.mqtt_client_id}-b"
    host = settings.model_copy(update={"replica": "hostname"})
    assert consumer_client_id(host) == f"{settings.mqtt_client_id}-{socket.gethostname()}"


def test_describe_exit() -> None:
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(3) == "exited with status 3"


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({}, "RPM_DATABASE_URL, RPM_MQTT_URL, RPM_MQTT_SHARED_GROUP"),
        ({"RPM_DATABASE_URL": "postgresql://x@127.0.0.1:1/x", "RPM_MQTT_URL": "mqtt://127.0.0.1:1"},
         "RPM_MQTT_SHARED_GROUP"),
    ],
)  # fmt: skip
def test_workers_refuse_embedded_servers_and_a_missing_group(
    environment: dict[str, str], named: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.startswith("RPM_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no .env
    result = CliRunner().invoke(cli, ["serve", "--workers", "2"], env=environment)
    assert isinstance(result.exception, ConfigurationError)
    assert f"--workers 2 needs {named}" in str(result.exception)


def test_workers_out_of_range_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["serve", "--workers", "0"])
    assert result.exit_code == 2
    assert "--workers" in result.output


# The middle process starts a worker that watches it, prints the worker's pid, and waits.
ORPHAN = """
import os, subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid()), sys.argv[2]])
print(worker.pid, flush=True)
time.sleep(120)
"""
WATCHING = """
import signal, sys, time
from ingest.workers.worker import watch_parent
def stopped(*_):
    open(sys.argv[2], "w").write("stopped cleanly")
    sys.exit(0)
signal.signal(signal.SIGTERM, stopped)
watch_parent(int(sys.argv[1]))
time.sleep(120)
"""


def test_a_worker_stops_cleanly_when_its_parent_is_killed(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    parent = subprocess.Popen(
        [sys.executable, "-c", ORPHAN, WATCHING, str(marker)], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
    )  # fmt: skip
    assert parent.stdout is not None
    worker = int(parent.stdout.readline())
    time.sleep(0.5)  # the watch is running
    parent.kill()
    parent.wait(10)
    wait_until(lambda: marker.exists(), 15, "the orphaned worker to stop on its own")
    assert marker.read_text() == "stopped cleanly"
    wait_until(lambda: not Path(f"/proc/{worker}").exists() or _zombie(worker), 15, "the worker to exit")


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True

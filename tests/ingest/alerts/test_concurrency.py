"""Two service processes on one database: one alert per condition whatever the interleaving, no
debounce lost between concurrent transactions, and the stream of one process shows alerts opened
through the other. Also: a restart in the middle of an episode keeps its state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingest.alerts.component import alerts_component
from ingest.settings import Settings
from ingest.store.tokens import create_token
from tests.ingest.alerts.sse import SSEClient
from tests.support.alerts import Clinic, ago, alert_settings, reading
from tests.support.service import RunningService, free_port, running_service

ROOT = Path(__file__).resolve().parents[3]


class Proc:
    def __init__(self, db_url: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.ingest.alerts.serve_proc", db_url, str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"service process did not start: {err[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def two_processes(db_url: str) -> Iterator[tuple[Proc, Proc]]:
    a, b = Proc(db_url), Proc(db_url)
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


def admin_token(db_url: str) -> str:
    import psycopg

    with psycopg.connect(db_url) as conn:
        secret, _ = create_token(conn, name="admin", role="admin")
    return secret


def setup(http: httpx.Client, mrn: str, devices: list[str]) -> str:
    r = http.post("/v1/patients", json={"mrn": mrn, "display_name": "Pat"})
    assert r.status_code == 201, r.text
    pid: str = r.json()["id"]
    for d in devices:
        assert http.post("/v1/devices", json={"id": d, "type": "strap"}).status_code == 201
        since = ago(days=2).isoformat()
        r = http.put(f"/v1/devices/{d}/assignment", json={"patient_id": pid, "since": since})
        assert r.status_code == 200
    return pid


def test_two_processes_never_open_two_alerts_for_one_condition(
    two_processes: tuple[Proc, Proc], db_url: str
) -> None:
    a, b = two_processes
    token = admin_token(db_url)
    headers = {"Authorization": f"Bearer {token}"}
    clients = [httpx.Client(base_url=p.base_url, headers=headers, timeout=30) for p in (a, b)]
    try:
        devices = [f"STRAP-{i}" for i in range(4)]
        pid = setup(clients[0], "MRN-1", devices)
        with SSEClient(a.base_url, token) as stream_a:
            barrier = threading.Barrier(8)
            errors: list[str] = []

            def worker(n: int) -> None:
                device = devices[n % 4]
                barrier.wait()
                for i in range(15):
                    at = ago(seconds=600 - i * 8 - n)
                    body = {"device_id": device, "readings": [reading("heart_rate", 150 + i, at)]}
                    for k in range(2):  # each reading delivered twice, once to either process
                        r = clients[(n + k) % 2].post("/v1/readings", json=body)
                        if r.status_code != 200:
                            errors.append(f"{r.status_code} {r.text[:200]}")

            threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert errors == []
            r = clients[1].get("/v1/alerts", params={"patient_id": pid})
            alerts = r.json()["alerts"]
            assert len(alerts) == 1, alerts
            assert alerts[0]["status"] == "open" and alerts[0]["severity"] == "critical"
            # the stream of process A got the one "opened" event, whichever process wrote it
            event = stream_a.next()
            assert event.data["type"] == "opened" and event.data["alert"]["id"] == alerts[0]["id"]
            stream_a.assert_quiet(1.0)
        import psycopg

        with psycopg.connect(db_url) as conn:
            row = conn.execute("SELECT count(*) FROM alert_events WHERE type = 'opened'").fetchone()
            assert row is not None and row[0] == 1
            row = conn.execute("SELECT count(*) FROM readings").fetchone()
            assert row is not None and row[0] == 8 * 15
    finally:
        for c in clients:
            c.close()


def test_concurrent_readings_in_two_processes_complete_a_debounce(
    two_processes: tuple[Proc, Proc], db_url: str
) -> None:
    """heart_rate warns after 2 consecutive readings: one reading in each process, committed at
    the same moment, must still open the alert (each transaction sees the other's reading)."""
    a, b = two_processes
    token = admin_token(db_url)
    headers = {"Authorization": f"Bearer {token}"}
    with (
        httpx.Client(base_url=a.base_url, headers=headers, timeout=30) as ca,
        httpx.Client(base_url=b.base_url, headers=headers, timeout=30) as cb,
    ):
        rounds = 12
        patients = [setup(ca, f"MRN-{i}", [f"A-{i}", f"B-{i}"]) for i in range(rounds)]
        for i, pid in enumerate(patients):
            barrier = threading.Barrier(2)

            def post(
                client: httpx.Client, device: str, seconds: int, barrier: threading.Barrier = barrier
            ) -> None:
                body = {"device_id": device, "readings": [reading("heart_rate", 118, ago(seconds=seconds))]}
                barrier.wait()
                assert client.post("/v1/readings", json=body).status_code == 200

            threads = [
                threading.Thread(target=post, args=(ca, f"A-{i}", 60)),
                threading.Thread(target=post, args=(cb, f"B-{i}", 50)),
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            alerts = ca.get("/v1/alerts", params={"patient_id": pid}).json()["alerts"]
            assert [x["severity"] for x in alerts] == ["warning"], (i, alerts)


def test_restart_in_the_middle_of_an_episode_keeps_its_state(settings: Settings) -> None:
    s = alert_settings(settings)
    with running_service(s, factories=[alerts_component]) as svc, svc.client(svc.token("admin")) as http:
        clinic = Clinic(svc, http)
        pid = clinic.patient("STRAP-1", "MRN-1")
        other = clinic.patient("CUFF-1", "MRN-2")
        clinic.post("STRAP-1", reading("heart_rate", 120, ago(minutes=30)))  # 1 of 2
        clinic.post("CUFF-1", reading("systolic_bp", 190, ago(minutes=30)))
        assert clinic.active(pid) == [] and len(clinic.active(other)) == 1
    with running_service(s, factories=[alerts_component]) as svc, svc.client(svc.token("admin")) as http:
        clinic = Clinic(svc, http)
        clinic.post("STRAP-1", reading("heart_rate", 121, ago(minutes=20)))  # 2 of 2, after the restart
        [alert] = clinic.active(pid)
        assert alert["details"]["readings_in_episode"] == 2
        clinic.post("CUFF-1", reading("systolic_bp", 190, ago(minutes=20)))
        [still] = clinic.active(other)  # the same alert, not a second one
        clinic.post("CUFF-1", reading("systolic_bp", 120, ago(minutes=10)))
        [latched] = clinic.active(other)  # critical, unacknowledged: it stays, marked cleared
        assert latched["id"] == still["id"] and latched["cleared_at"] is not None
        assert [e["type"] for e in clinic.events() if e["alert_id"] == still["id"]] == ["opened", "cleared"]


def test_human_steps_and_ingest_wait_for_the_patients_alert_lock(svc: RunningService, clinic: Clinic) -> None:
    """While one transaction decides on a patient's readings (holding the patient's alert lock),
    an acknowledgement or another batch of that patient waits for it, instead of interleaving."""
    from uuid import UUID

    import psycopg

    from ingest.alerts.store import lock_key

    pid = clinic.patient("CUFF-1")
    clinic.post("CUFF-1", reading("systolic_bp", 190, ago(minutes=5)))
    [alert] = clinic.active(pid)
    done: dict[str, int] = {}

    def act(name: str, call: Any) -> threading.Thread:
        thread = threading.Thread(target=lambda: done.__setitem__(name, call().status_code))
        thread.start()
        return thread

    db_url = svc.services.settings.database_url
    assert db_url is not None
    with psycopg.connect(db_url) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(UUID(pid)),))
        threads = [
            act("ack", lambda: clinic.http.post(f"/v1/alerts/{alert['id']}/acknowledge")),
            act(
                "ingest",
                lambda: clinic.http.post(
                    "/v1/readings",
                    json={"device_id": "CUFF-1", "readings": [reading("systolic_bp", 120, ago(minutes=1))]},
                ),
            ),
        ]
        time.sleep(1.0)
        assert done == {}, "they went ahead while the patient's lock was held"
        holder.rollback()
    for t in threads:
        t.join(timeout=30)
    assert done == {"ack": 200, "ingest": 200}

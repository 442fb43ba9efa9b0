"""``rpm-ingest demo`` as a newcomer runs it: the printed URL and token work, live devices (MQTT
and the emulated Bluetooth home) deliver readings, an alert appears within a minute, and Ctrl-C
stops everything with exit status 0."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tests.support.service import free_port


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def test_demo_command_end_to_end(db_url: str, mqtt_url: str, topic_prefix: str, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "RPM_DATABASE_URL": db_url,
        "RPM_MQTT_URL": mqtt_url,
        "RPM_MQTT_TOPIC_PREFIX": topic_prefix,
        "RPM_MQTT_CLIENT_ID": f"demo-{uuid.uuid4().hex[:8]}",
        "RPM_HTTP_PORT": str(port),
        "RPM_DATA_DIR": str(tmp_path),
        "RPM_ALERT_SCHEDULER_INTERVAL_S": "5",
    }
    started = datetime.now(UTC) - timedelta(seconds=5)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingest", "demo"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout or []), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("Admin token:" in line for line in output), 90, "the demo banner")
        text = "".join(output)
        url = re.search(r"Dashboard:\s+(\S+)", text)
        token = re.search(r"Admin token:\s+(rpm_\S+)", text)
        assert url and token, text
        assert url.group(1) == f"http://127.0.0.1:{port}/"

        with httpx.Client(base_url=url.group(1), headers={"Authorization": f"Bearer {token.group(1)}"},
                          timeout=10, follow_redirects=True) as api:
            page = api.get("/")
            assert page.status_code == 200 and "RPM clinician dashboard" in page.text
            patients = api.get("/v1/dashboard/patients").json()["patients"]
            assert len(patients) == 7
            home_patient = next(p for p in patients if p["mrn"] == "DEMO-1006")

            def live_alert() -> bool:
                alerts = api.get("/v1/alerts", params={"status": "open,acknowledged,resolved"}).json()
                return any(
                    a["kind"] == "threshold" and datetime.fromisoformat(a["onset_at"]) >= started
                    for a in alerts["alerts"]
                )

            wait_for(live_alert, 60, "an alert raised by a live reading")

            def home_reading() -> bool:
                detail = api.get(f"/v1/dashboard/patients/{home_patient['id']}").json()
                return any(
                    d["last_seen_at"] and datetime.fromisoformat(d["last_seen_at"]) >= started
                    for d in detail["devices"]
                )

            wait_for(home_reading, 60, "a reading from the emulated Bluetooth home")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            status = proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("the demo did not stop within 40 s of Ctrl-C") from None
        reader.join(5)
    log = "".join(output)
    assert status == 0, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert "gateway stopped" in log

"""``rpm-ingest demo`` as a newcomer runs it: the printed URL and token work, live devices (MQTT
and the emulated Bluetooth home) deliver readings, an alert appears within a minute, and Ctrl-C
stops everything with exit status 0."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.support.service import free_port
from tests.support.waiting import wait_until


def ctrl_c(proc: subprocess.Popen[str], reader: threading.Thread) -> int:
    """Stop the demo as a person does (Ctrl-C) and return its exit status once its output is read."""
    proc.send_signal(signal.SIGINT)
    try:
        status = proc.wait(timeout=40)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("the demo did not stop within 40 s of Ctrl-C") from None
    reader.join(5)
    return status


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
        banner = lambda: any("Admin token:" in line for line in output)  # noqa: E731
        wait_until(banner, 90, "the demo banner", interval_s=0.5)
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
            assert len(patients) == 8
            home_patient = next(p for p in patients if p["mrn"] == "DEMO-1006")

            def live_alert() -> bool:
                alerts = api.get("/v1/alerts", params={"status": "open,acknowledged,resolved"}).json()
                return any(
                    a["kind"] == "threshold" and datetime.fromisoformat(a["onset_at"]) >= started
                    for a in alerts["alerts"]
                )

            wait_until(live_alert, 60, "an alert raised by a live reading", interval_s=0.5)

            def home_reading() -> bool:
                detail = api.get(f"/v1/dashboard/patients/{home_patient['id']}").json()
                return any(
                    d["last_seen_at"] and datetime.fromisoformat(d["last_seen_at"]) >= started
                    for d in detail["devices"]
                )

            wait_until(home_reading, 60, "a reading from the emulated Bluetooth home", interval_s=0.5)
            rosa = next(p for p in patients if p["mrn"] == "DEMO-1008")

            def live_strip() -> bool:
                strips = api.get(f"/v1/patients/{rosa['id']}/ecg").json()["strips"]
                return any(datetime.fromisoformat(s["measured_at"]) >= started for s in strips)

            wait_until(live_strip, 60, "a live ECG strip from the cardiac patient's card", interval_s=0.5)
    finally:
        status = ctrl_c(proc, reader)
    log = "".join(output)
    assert status == 0, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert "gateway stopped" in log


# --- what a newcomer reads: first run and a restart with the same data directory ----------------

#: a log line as `rpm-ingest demo` prints it (time, level, logger: message)
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>[A-Z]+) +(?P<logger>[\w.]+): ")
#: what only library chatter or our own set-up problems would print
CHATTER = ("initdb", "pg_ctl", "pgserver", "XDG_RUNTIME_DIR", "record transfer", "record probe",
           "record numbers", 'HTTP/1.1"', "Uvicorn")


def _newcomer_env(data_dir: Path, port: int) -> dict[str, str]:
    """A shell with no RPM_* configuration: embedded PostgreSQL and MQTT broker, as a first try."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPM_") and k != "XDG_RUNTIME_DIR"}
    env.update(RPM_DATA_DIR=str(data_dir), RPM_HTTP_PORT=str(port), RPM_MQTT_EMBEDDED_PORT="0")
    return env


def _run_demo_once(env: dict[str, str]) -> str:
    """Start the demo, sign in with what it prints, wait until the emulated Bluetooth home's
    record devices (cuff, glucose meter) delivered a reading, Ctrl-C; the whole output."""
    started = datetime.now(UTC)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingest", "demo"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout or []), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("Admin token:" in line for line in output) or proc.poll() is not None,
                 90, "the demo banner", interval_s=0.5)
        text = "".join(output)
        url = re.search(r"Dashboard:\s+(\S+)", text)
        token = re.search(r"Admin token:\s+(rpm_\S+)", text)
        assert url and token, "no dashboard URL and token"
        with httpx.Client(base_url=url.group(1), headers={"Authorization": f"Bearer {token.group(1)}"},
                          timeout=10) as api:
            patients = {p["mrn"]: p for p in api.get("/v1/dashboard/patients").json()["patients"]}

            def last_seen(mrn: str) -> dict[str, datetime]:
                detail = api.get(f"/v1/dashboard/patients/{patients[mrn]['id']}").json()
                return {
                    d["type"]: datetime.fromisoformat(d["last_seen_at"])
                    for d in detail["devices"] if d["last_seen_at"]
                }

            # newer than this run's start and than the history filled in on a first run (all
            # received at one moment: what the silent patient's scale last sent)
            live_after = max([started, *last_seen("DEMO-1007").values()])

            def record_devices_delivered() -> bool:
                seen = last_seen("DEMO-1006")  # the patient of the emulated Bluetooth home
                return all(
                    seen.get(kind, live_after) > live_after
                    for kind in ("blood_pressure_monitor", "glucose_meter")
                )

            wait_until(
                record_devices_delivered, 100, "records from the emulated cuff and meter", interval_s=0.5
            )
    except (AssertionError, httpx.HTTPError) as exc:
        failure: Exception | None = exc
    else:
        failure = None
    finally:
        status = ctrl_c(proc, reader)
    log = "".join(output)
    if failure is not None:
        raise AssertionError(f"{failure}\n--- the demo's output ---\n{log[-6000:]}") from failure
    assert status == 0, log[-3000:]
    return log


def _assert_only_what_a_person_needs(log: str, port: int) -> None:
    assert f"Dashboard:    http://127.0.0.1:{port}/" in log, log
    assert re.search(r"Admin token:  rpm_\S+", log), log
    assert "Press Ctrl-C to stop." in log, log
    for line in log.splitlines():
        match = LOG_LINE.match(line)
        if match is None:  # the banner (indented) or its blank lines, nothing else
            assert line == "" or line.startswith("  "), f"not a log line nor the banner: {line!r}\n{log}"
            continue
        assert match["level"] == "INFO", f"{line}\n{log}"
        assert match["logger"].startswith(("ingest.", "devices.gateway.")), f"library chatter: {line}"
        assert not any(marker in line for marker in CHATTER), f"chatter: {line}"


@pytest.fixture
def outside_pytest_tmp() -> Iterator[Path]:
    """A data directory outside pytest's temporary tree. Run as root, the embedded PostgreSQL
    runs as a system user that must reach its data (pgserver opens the parents for it), and any
    pytest starting meanwhile closes its tree (0700) again."""
    path = Path(tempfile.mkdtemp(prefix="rpm-demo-test-"))
    yield path / "data"
    shutil.rmtree(path, ignore_errors=True)


def test_demo_output_first_run_and_restart(outside_pytest_tmp: Path) -> None:
    port = free_port()
    env = _newcomer_env(outside_pytest_tmp, port)

    first = _run_demo_once(env)
    _assert_only_what_a_person_needs(first, port)
    assert "embedded PostgreSQL running" in first and "gateway stopped" in first

    # the same data directory again: database, gateway queue and the emulated devices' memory kept
    again = _run_demo_once(env)
    _assert_only_what_a_person_needs(again, port)
    assert "applying migration" not in again

"""The service runs with its own dependencies only: no extra is needed to serve.

The production image installs ``pip install .`` and none of the extras (``[gateway]``: bleak,
bleak-retry-connector; ``[embedded]``: pgserver, amqtt; ``[emulation]``: bumble). Each check runs
in a fresh interpreter whose import system refuses those packages (a ``sys.meta_path`` finder),
so a top-level import of one anywhere on the service's path fails here. The wheel is built and
listed to check the package data it must carry.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ("bleak", "bleak_retry_connector", "bumble", "amqtt", "pgserver")

# Installed first thing in each child interpreter.
REFUSE_EXTRAS = f"""
import importlib.abc, sys

BLOCKED = {EXTRAS!r}


class RefuseExtras(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (extra not installed)", name=name)
        return None


assert not any(m.split(".")[0] in BLOCKED for m in sys.modules), "an extra was imported already"
sys.meta_path.insert(0, RefuseExtras())
"""

# Imports every module of the packages and runs the commands' help; prints a JSON report.
SURVEY = """
import importlib, json, pkgutil, traceback
from click.testing import CliRunner

report = {"help": {}, "modules": {}}
from ingest.cli import cli

for args in COMMANDS:
    result = CliRunner().invoke(cli, args, prog_name="rpm-ingest")
    report["help"][" ".join(args)] = {
        "exit_code": result.exit_code,
        "output": result.output[:2000],
        "exception": None if result.exception is None or isinstance(result.exception, SystemExit)
        else "".join(traceback.format_exception(result.exception))[-3000:],
    }

for package in ("devices", "fhir_export", "dicom_export", "hl7_export", "ingest"):
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if info.name.endswith(".__main__"):
            continue  # running it is running the CLI
        try:
            importlib.import_module(info.name)
        except ModuleNotFoundError as exc:
            report["modules"][info.name] = exc.name
        except Exception as exc:
            report["modules"][info.name] = "error: " + "".join(traceback.format_exception(exc))[-3000:]
print(json.dumps(report))
"""

# Every command group and command a service operator may ask about.
COMMANDS = [
    ["--help"],
    ["serve", "--help"],
    ["demo", "--help"],
    ["migrate", "--help"],
    ["token", "--help"],
    ["devices", "--help"],
    ["fhir", "--help"],
    ["simulate", "--help"],
    ["ble", "--help"],
    ["gateway", "--help"],
]

# Modules that exist to drive a radio, emulate one or run an embedded server: each may need its
# extra at import time, and only because of it.
NEEDS_AN_EXTRA = (
    "devices.ble.collector",  # bleak: the one module that talks to the radio
    "devices.ble.emulated",  # bumble: emulated peripherals for tests and the demo
    "ingest.demo",  # the demo's emulated home (bumble)
)

# What `rpm-ingest serve` loads: the composition root, the app factory and the components.
SERVE_PATH = (
    "ingest.cli",
    "ingest.commands.serve",
    "ingest.runtime",
    "ingest.components",
    "ingest.api.app",
    "ingest.alerts.component",
    "ingest.dashboard.component",
    "ingest.export.component",
    "ingest.mqtt",
    "ingest.embedded.postgres",
    "ingest.embedded.broker",
)


def run_child(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", REFUSE_EXTRAS + script, *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip


def test_every_command_and_the_serve_path_import_without_the_extras() -> None:
    done = run_child(f"COMMANDS = {COMMANDS!r}\n" + SURVEY)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    for args, outcome in report["help"].items():
        assert outcome["exit_code"] == 0 and outcome["exception"] is None, (args, outcome)
        assert "Usage: rpm-ingest" in outcome["output"], (args, outcome)
    failed: dict[str, str] = report["modules"]
    errors = {name: why for name, why in failed.items() if why is None or why.startswith("error: ")}
    assert errors == {}
    for name, missing in failed.items():
        assert missing.split(".")[0] in EXTRAS, (name, missing)  # nothing but an extra is missing
        assert name.startswith(NEEDS_AN_EXTRA), f"{name} needs {missing} at import time"
    for name in SERVE_PATH:
        assert not any(name == f or name.startswith(f + ".") for f in failed), name
    assert "devices.ble.collector" in failed  # the refusal works (bleak is installed here)


def test_the_decoders_and_the_gateway_queue_import_without_the_extras() -> None:
    done = run_child(
        "import devices.ble, devices.ble.characteristics, devices.gateway.queue_store, fhir_export.mapping\n"
        "import sys\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED))\n"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]"


SERVE = """
import sys
from ingest.cli import main

sys.argv = ["rpm-ingest", "serve"]
main()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_serve_runs_without_the_extras(db_url: str, mqtt_url: str, topic_prefix: str, tmp_path: Path) -> None:
    """`rpm-ingest serve` with an external database and broker, as the image runs it."""
    port = free_port()
    env = {
        **os.environ,
        "RPM_DATABASE_URL": db_url,
        "RPM_MQTT_URL": mqtt_url,
        "RPM_MQTT_TOPIC_PREFIX": topic_prefix,
        "RPM_MQTT_CLIENT_ID": f"pkg-{uuid.uuid4().hex[:8]}",
        "RPM_HTTP_HOST": "127.0.0.1",
        "RPM_HTTP_PORT": str(port),
        "RPM_DATA_DIR": str(tmp_path),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", REFUSE_EXTRAS + SERVE],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout or []), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert ready is not None and ready.status_code == 200, "".join(output)[-4000:]
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, "".join(output)[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        reader.join(5)
    text = "".join(output)
    assert not any(name in text for name in ("No module named", "extra not installed")), text[-4000:]


# What deploy/rpm/Dockerfile copies into the build stage (and .dockerignore lets through).
IMAGE_CONTEXT = (
    "pyproject.toml", "README.md", "ingest", "devices", "fhir_export", "dicom_export", "hl7_export",
)  # fmt: skip


def test_the_image_context_is_what_the_dockerfile_copies() -> None:
    allowed = [line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")]  # fmt: skip
    assert sorted(allowed) == sorted(IMAGE_CONTEXT)
    dockerfile = (ROOT / "deploy/rpm/Dockerfile").read_text()
    for name in ("ingest", "devices", "fhir_export", "dicom_export", "hl7_export"):
        assert f"COPY {name} ./{name}" in dockerfile


def test_the_wheel_carries_the_packages_and_their_data(tmp_path: Path) -> None:
    """Built (as ``pip install .`` in the image builds it) from a copy of the image's context."""
    context = tmp_path / "context"
    context.mkdir()
    for name in IMAGE_CONTEXT:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, context / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, context / name)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(context)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if done.returncode != 0 and "No matching distribution found for setuptools" in done.stderr:
        pytest.skip("no package index to fetch the build backend from")
    assert done.returncode == 0, done.stderr[-3000:]
    [wheel] = (tmp_path / "dist").glob("rpm_ingest-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {name.split("/")[0] for name in names if not name.startswith("rpm_ingest-")} == {
        "devices", "fhir_export", "dicom_export", "hl7_export", "ingest",
    }  # fmt: skip
    data = {
        path.relative_to(ROOT).as_posix()
        for package in ("ingest", "devices", "fhir_export", "dicom_export", "hl7_export")
        for pattern in ("*.sql", "*.csv", "py.typed")
        for path in (ROOT / package).rglob(pattern)
    } | {p.relative_to(ROOT).as_posix() for p in (ROOT / "ingest/dashboard/static").rglob("*") if p.is_file()}
    assert {"devices/data/metrics.csv", "ingest/db/migrations/0001_foundation.sql"} <= data
    assert "ingest/dashboard/static/index.html" in data
    assert data <= names, sorted(data - names)
    modules = {
        path.relative_to(ROOT).as_posix()
        for package in ("ingest", "devices", "fhir_export", "dicom_export", "hl7_export")
        for path in (ROOT / package).rglob("*.py")
    }
    assert modules <= names, sorted(modules - names)

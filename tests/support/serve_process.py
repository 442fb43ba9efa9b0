"""One real ``rpm-ingest serve`` process on a free HTTP port, for the crash tests that SIGKILL it:
HTTP only (no MQTT), the database given, and the settings the test adds on top."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support.service import free_port
from tests.support.waiting import wait_until

RPM_INGEST = Path(sys.executable).with_name("rpm-ingest")
Served = AbstractContextManager[tuple[subprocess.Popen[bytes], str]]


@contextmanager
def serve(
    db_url: str, workdir: Path, name: str, **settings: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Start ``rpm-ingest serve`` with ``settings`` (RPM_* variables) and yield (process, base URL)
    once it answers /healthz; SIGTERM (then SIGKILL) at the end if it still runs. Its output goes
    to ``workdir/<name>.log``."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPM_")}
    env.update(
        RPM_DATABASE_URL=db_url,
        RPM_MQTT_ENABLED="false",
        RPM_MQTT_URL="mqtt://127.0.0.1:1",
        RPM_HTTP_PORT=str(port),
        RPM_DATA_DIR=str(workdir),
        RPM_RATE_LIMIT_PER_MINUTE="0",
        RPM_ALERT_SCHEDULER_INTERVAL_S="3600",
    )
    env.update(settings)
    log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [str(RPM_INGEST), "serve"], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _healthy(url) or process.poll() is not None, 60, f"{name} to start")
        assert process.poll() is None, (workdir / f"{name}.log").read_text()[-3000:]
        yield process, url
    finally:
        if process.poll() is None:
            stop(process)
        log.close()


def stop(process: subprocess.Popen[Any], grace_s: float = 30) -> None:
    """SIGTERM, and SIGKILL if it has not ended after ``grace_s``."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False

"""A real ``rpm-ingest serve`` SIGKILLed while a message waits for its ACK: after a restart every
reading reaches the receiver, with the control ids it had; only the claim that was in flight is
sent again (same MSH-10s, so a receiver that de-duplicates counts each once), nothing else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from psycopg_pool import ConnectionPool

from ingest.store.tokens import create_token
from tests.ingest.hl7.helpers import hl7_rows
from tests.support.export import add_patient, hr
from tests.support.mllp_receiver import MllpReceiver
from tests.support.service import free_port
from tests.support.waiting import wait_until

RPM_INGEST = Path(sys.executable).with_name("rpm-ingest")
BATCH = 5


@contextmanager
def serve(
    db_url: str, mllp_url: str, workdir: Path, name: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPM_")}
    env.update(
        RPM_DATABASE_URL=db_url,
        RPM_MQTT_ENABLED="false",
        RPM_MQTT_URL="mqtt://127.0.0.1:1",
        RPM_HTTP_PORT=str(port),
        RPM_DATA_DIR=str(workdir),
        RPM_HL7_MLLP_URL=mllp_url,
        RPM_HL7_LEASE_S="1",
        RPM_HL7_BATCH_SIZE=str(BATCH),
        RPM_HL7_ACK_TIMEOUT_S="120",
        RPM_HL7_POLL_INTERVAL_S="0.1",
        RPM_RATE_LIMIT_PER_MINUTE="0",
        RPM_ALERT_SCHEDULER_INTERVAL_S="3600",
    )
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
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        log.close()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_sigkill_while_waiting_for_an_ack_loses_nothing(
    pool: ConnectionPool, db_url: str, tmp_path: Path
) -> None:
    add_patient(pool)
    with pool.connection() as conn, conn.transaction():
        token, _ = create_token(conn, name="t", role="admin")
    arrivals = 0
    lock = threading.Lock()

    def script(control_id: str, attempt: int) -> str:
        nonlocal arrivals
        with lock:
            arrivals += 1
            return "silent" if arrivals == 13 else "AA"  # the 13th message's ACK never comes

    with MllpReceiver(script=script) as receiver:
        with serve(db_url, receiver.url, tmp_path, "first") as (first, url):
            readings = [hr(60 + i % 40, minute=i / 2) for i in range(30)]
            r = httpx.post(
                f"{url}/v1/readings",
                headers={"Authorization": f"Bearer {token}"},
                json={"device_id": "F0F1F2F3F4F5", "readings": readings},
            )
            assert r.json()["accepted"] == 30, r.text
            wait_until(lambda: arrivals >= 13, 60, "the 13th message to be in flight")
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        before = dict(receiver.attempts)
        assert len(before) == 13
        with serve(db_url, receiver.url, tmp_path, "second"):
            wait_until(lambda: {r["status"] for r in hl7_rows(pool)} == {"sent"}, 60, "every row to be sent")
        rows = hl7_rows(pool)
        assert len(rows) == 30
        assert receiver.unique_accepted() == {r["fhir_reference"] for r in rows}
        sent_again = {c for c, n in receiver.attempts.items() if n > 1}
        # only the claim in flight (the 11th to 15th rows) went again; the first two claims were recorded
        assert sent_again <= {r["fhir_reference"] for r in rows[10:15]}
        assert 1 <= len(sent_again) <= BATCH
        assert receiver.invalid == []

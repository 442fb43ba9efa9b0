"""A real ``rpm-ingest serve`` SIGKILLed while a message waits for its ACK: after a restart every
reading reaches the receiver, with the control ids it had; only the claim that was in flight is
sent again (same MSH-10s, so a receiver that de-duplicates counts each once), nothing else."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import httpx
from psycopg_pool import ConnectionPool

from ingest.store.tokens import create_token
from tests.ingest.hl7.helpers import hl7_rows
from tests.support.export import add_patient, hr
from tests.support.mllp_receiver import MllpReceiver
from tests.support.serve_process import Served
from tests.support.serve_process import serve as serve_process
from tests.support.waiting import wait_until

BATCH = 5


def serve(db_url: str, mllp_url: str, workdir: Path, name: str) -> Served:
    """``rpm-ingest serve`` sending HL7 to ``mllp_url`` (lease 1 s, small batches), no MQTT."""
    return serve_process(
        db_url, workdir, name,
        RPM_HL7_MLLP_URL=mllp_url,
        RPM_HL7_LEASE_S="1",
        RPM_HL7_BATCH_SIZE=str(BATCH),
        RPM_HL7_ACK_TIMEOUT_S="120",
        RPM_HL7_POLL_INTERVAL_S="0.1",
    )  # fmt: skip


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

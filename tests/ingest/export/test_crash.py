"""A real ``rpm-ingest serve`` killed with SIGKILL in the middle of a bundle: its rows come back
when their lease runs out and two new service processes deliver them, each exactly once."""

from __future__ import annotations

import signal
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg_pool import ConnectionPool

from ingest.store.tokens import create_token
from tests.support.export import add_patient, ehr_patient, hr
from tests.support.fhir_test_server import FhirTestServer
from tests.support.serve_process import Served
from tests.support.serve_process import serve as serve_process
from tests.support.waiting import wait_until


def serve(db_url: str, fhir_base_url: str, workdir: Path, name: str) -> Served:
    """``rpm-ingest serve`` with the export on (lease 1 s), no MQTT; yields (process, base URL)."""
    return serve_process(
        db_url, workdir, name,
        RPM_FHIR_BASE_URL=fhir_base_url,
        RPM_FHIR_LEASE_S="1",
        RPM_FHIR_POLL_INTERVAL_S="0.1",
        RPM_FHIR_TIMEOUT_S="60",
    )  # fmt: skip


def outbox(pool: ConnectionPool) -> list[tuple[Any, ...]]:
    with pool.connection() as conn:
        return conn.execute(
            "SELECT status, claim_token IS NOT NULL, created_in_ehr, claimed_by FROM outbox ORDER BY id"
        ).fetchall()


@pytest.mark.parametrize("when", ["after_commit", "before"])
def test_sigkill_mid_bundle_then_two_processes_deliver_each_reading_once(
    pool: ConnectionPool, db_url: str, ehr: FhirTestServer, tmp_path: Path, when: str
) -> None:
    ehr_patient(ehr)
    add_patient(pool, fhir_patient_id="pat-1")
    with pool.connection() as conn, conn.transaction():
        token, _ = create_token(conn, name="t", role="admin")
    headers = {"Authorization": f"Bearer {token}"}

    with serve(db_url, ehr.base_url, tmp_path, "first") as (first, url):
        # One reading first: the Device is created, so the next request is the Observations' bundle.
        r = httpx.post(f"{url}/v1/readings", headers=headers,
                       json={"device_id": "F0F1F2F3F4F5", "readings": [hr(59, minute=-1)]})  # fmt: skip
        assert r.status_code == 200, (tmp_path / "first.log").read_text()[-4000:]
        assert r.json()["accepted"] == 1
        wait_until(lambda: [row[0] for row in outbox(pool)] == ["sent"], 30, "the first reading to be sent")
        before = ehr.stats()
        # The EHR holds the next answer for a long time (after storing the bundle, or before).
        ehr.inject({"action": "delay", "when": when, "delay_ms": 3000 if when == "before" else 60_000})
        readings = [hr(60 + i % 40, minute=i / 2) for i in range(60)]
        r = httpx.post(
            f"{url}/v1/readings", headers=headers, json={"device_id": "F0F1F2F3F4F5", "readings": readings}
        )
        assert r.json()["accepted"] == 60
        if when == "after_commit":
            wait_until(
                lambda: ehr.stats()["transactions"] > before["transactions"],
                30,
                "the EHR to store the bundle",
            )
        else:
            wait_until(
                lambda: ehr.stats()["faults_applied"] > before["faults_applied"],
                30,
                "the bundle to be in flight",
            )
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    held = outbox(pool)[1:]
    assert {(status, claimed) for status, claimed, *_ in held} == {("pending", True)}  # leased, unsent

    with ExitStack() as stack:
        stack.enter_context(serve(db_url, ehr.base_url, tmp_path, "second"))
        stack.enter_context(serve(db_url, ehr.base_url, tmp_path, "third"))
        wait_until(lambda: {row[0] for row in outbox(pool)} == {"sent"}, 60, "the rows to be delivered")
    if when == "before":
        time.sleep(3.5)  # the held request may still be processed late: it must not add anything
    found = ehr.search("Observation")
    values = [o["identifier"][0]["value"] for o in found]
    assert len(values) == len(set(values)) == 61
    assert len(ehr.search("Device")) == 1
    rows = outbox(pool)[1:]
    if when == "after_commit":
        # The EHR had stored them before the crash: the new attempt found them, created nothing.
        assert {created for _, _, created, _ in rows} == {False}

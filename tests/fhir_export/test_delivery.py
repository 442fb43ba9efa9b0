"""Delivering outbox rows to the real local FHIR server: exactly once, whatever fails."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from fhir_export.auth import NoAuth
from fhir_export.client import FhirClient, RetryPolicy, build_http_client
from fhir_export.mapping import ObservationMapper
from fhir_export.models import DeviceInfo
from fhir_export.worker import Backoff, ExportWorker
from tests.support.fhir_checks import assert_valid
from tests.support.fhir_items import CANONICAL, item, reading, series
from tests.support.fhir_test_server import Ehr, run_fhir_server
from tests.support.memory_outbox import MemoryOutbox


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


FAST = RetryPolicy(attempts=3, initial_s=0.01, max_wait_s=2.0, jitter_s=0.01)


@contextmanager
def client_for(base_url: str, *, timeout_s: float = 30.0, retry: RetryPolicy = FAST,
               sleeps: list[float] | None = None) -> Iterator[FhirClient]:  # fmt: skip
    import time

    def sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)
        time.sleep(seconds)

    with build_http_client(timeout_s=timeout_s, connect_timeout_s=2.0) as http:
        yield FhirClient(http, base_url, NoAuth(), retry=retry, sleep=sleep)


def make_worker(outbox: MemoryOutbox, client: FhirClient, mapper: ObservationMapper,
                bundle_size: int = 100) -> ExportWorker:  # fmt: skip
    return ExportWorker(
        outbox, client, mapper, bundle_size=bundle_size, backoff=Backoff(initial_s=5),
        rng=random.Random(7),
    )  # fmt: skip


def drain(worker: ExportWorker, outbox: MemoryOutbox, rounds: int = 20) -> None:
    for _ in range(rounds):
        outbox.make_due()
        if worker.run_once() == 0:
            return


def stored_observations(ehr: Ehr) -> list[dict[str, Any]]:
    return ehr.server.search("Observation")


def test_every_metric_arrives_once_as_a_valid_observation(ehr: Ehr, mapper: ObservationMapper) -> None:
    outbox = MemoryOutbox()
    other = DeviceInfo(device_id="oxi-7", type="pulse_oximeter", manufacturer="Nonin")
    for metric in CANONICAL:
        if metric in ("systolic_bp", "diastolic_bp", "mean_arterial_pressure"):
            continue
        outbox.add(item(reading(metric), patient=ehr.patient_id))
    outbox.add(item(reading("systolic_bp"), reading("diastolic_bp"), reading("mean_arterial_pressure"),
                    patient=ehr.patient_id))  # fmt: skip
    outbox.add(item(reading("spo2", device="oxi-7"), patient=ehr.patient_id, device=other))
    with client_for(ehr.base_url) as client:
        worker = make_worker(outbox, client, mapper, bundle_size=4)
        drain(worker, outbox)
    assert outbox.count("sent") == len(outbox.rows) == 9
    assert all(row.created for row in outbox.rows.values())
    observations = stored_observations(ehr)
    assert len(observations) == 9
    for resource in observations:
        resource.pop("id"), resource.pop("meta", {}).pop("versionId", None)
        assert_valid(resource)
        assert resource["subject"] == {"reference": f"Patient/{ehr.patient_id}"}
        assert str(resource["device"]["reference"]).startswith("Device/")
    devices = ehr.server.search("Device")
    assert sorted(d["identifier"][0]["value"] for d in devices) == ["F0F1F2F3F4F5", "oxi-7"]
    for device in devices:
        assert_valid(device)
    assert ehr.server.stats()["transactions"] == 3


def test_conditional_create_prevents_duplicates_on_resend(ehr: Ehr, mapper: ObservationMapper) -> None:
    items = series(30, patient=ehr.patient_id)
    for round_ in range(2):
        outbox = MemoryOutbox()
        for export in items:
            outbox.add(export)
        with client_for(ehr.base_url) as client:
            drain(make_worker(outbox, client, mapper), outbox)
        assert outbox.count("sent") == 30
        assert all(row.created is (round_ == 0) for row in outbox.rows.values())
    assert len(stored_observations(ehr)) == 30
    assert len(ehr.server.search("Device")) == 1


def test_lost_response_after_commit_does_not_duplicate(ehr: Ehr, mapper: ObservationMapper) -> None:
    outbox = MemoryOutbox()
    for export in series(50, patient=ehr.patient_id):
        outbox.add(export)
    ehr.server.inject({"action": "drop", "when": "after_commit"})
    with client_for(ehr.base_url) as client:
        worker = make_worker(outbox, client, mapper)
        drain(worker, outbox)
        assert client.requests_sent == 2
    stats = ehr.server.stats()
    assert stats["transactions"] == 2 and stats["entries_existing"] == 51  # 50 + the Device
    assert outbox.count("sent") == 50
    assert not any(row.created for row in outbox.rows.values())  # the retry found them stored
    assert len(stored_observations(ehr)) == 50


def test_503_and_429_are_retried_honouring_retry_after(ehr: Ehr, mapper: ObservationMapper) -> None:
    outbox = MemoryOutbox()
    for export in series(5, patient=ehr.patient_id):
        outbox.add(export)
    ehr.server.inject(
        {"action": "status", "status": 503},
        {"action": "status", "status": 429, "retry_after": 1},
    )
    sleeps: list[float] = []
    with client_for(ehr.base_url, sleeps=sleeps) as client:
        drain(make_worker(outbox, client, mapper), outbox)
    assert len(sleeps) == 2 and sleeps[1] >= 1.0
    assert outbox.count("sent") == 5 and len(stored_observations(ehr)) == 5


def test_long_retry_after_defers_the_rows_instead_of_waiting(ehr: Ehr, mapper: ObservationMapper) -> None:
    outbox = MemoryOutbox()
    for export in series(3, patient=ehr.patient_id):
        outbox.add(export)
    ehr.server.inject({"action": "status", "status": 429, "retry_after": 120})
    sleeps: list[float] = []
    with client_for(ehr.base_url, sleeps=sleeps) as client:
        worker = make_worker(outbox, client, mapper)
        assert worker.run_once() == 3
        assert sleeps == [] and outbox.count("pending") == 3
        assert outbox.retry_delays == [pytest.approx(120, abs=1e-6)] or outbox.retry_delays[0] >= 120
        assert all(row.attempts == 1 and row.due >= 120 for row in outbox.rows.values())
        assert worker.run_once() == 0  # not due yet
        drain(worker, outbox)
    assert outbox.count("sent") == 3


def test_persistent_5xx_defers_with_growing_backoff(ehr: Ehr, mapper: ObservationMapper) -> None:
    outbox = MemoryOutbox()
    outbox.add(series(1, patient=ehr.patient_id)[0])
    ehr.server.inject({"action": "status", "status": 503, "count": 9})
    with client_for(ehr.base_url) as client:
        worker = make_worker(outbox, client, mapper)
        for _ in range(3):
            outbox.make_due()
            worker.run_once()
        [row] = outbox.rows.values()
        assert row.state == "pending" and row.attempts == 3 and "injected fault" in (row.reason or "")
        first, second, third = outbox.retry_delays
        assert 2.5 <= first <= 5 and 5 <= second <= 10 and 10 <= third <= 20
        drain(worker, outbox)
    assert outbox.count("sent") == 1


def test_slow_server_times_out_and_the_retry_finds_the_stored_bundle(
    ehr: Ehr, mapper: ObservationMapper
) -> None:
    outbox = MemoryOutbox()
    for export in series(20, patient=ehr.patient_id):
        outbox.add(export)
    ehr.server.inject({"action": "delay", "when": "after_commit", "delay_ms": 1500})
    with client_for(ehr.base_url, timeout_s=0.5) as client:
        drain(make_worker(outbox, client, mapper), outbox)
    assert outbox.count("sent") == 20
    assert len(stored_observations(ehr)) == 20


def test_server_down_defers_then_delivers_when_it_is_back(mapper: ObservationMapper) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/fhir"
    outbox = MemoryOutbox()
    with client_for(base_url) as client:
        worker = make_worker(outbox, client, mapper)
        with run_fhir_server(port=port) as server:
            patient = server.create({"resourceType": "Patient"})["id"]
            server.process.terminate()
            server.process.wait(10)
            for export in series(10, patient=patient):
                outbox.add(export)
            worker.run_once()
            assert outbox.count("pending") == 10
            assert all("unreachable" in (row.reason or "") for row in outbox.rows.values())
        with run_fhir_server(port=port) as server:
            server.put({"resourceType": "Patient", "id": patient})
            drain(worker, outbox)
            assert outbox.count("sent") == 10
            assert len(server.search("Observation")) == 10


def test_one_invalid_entry_is_parked_and_the_rest_delivered(ehr: Ehr, mapper: ObservationMapper) -> None:
    outbox = MemoryOutbox()
    good = series(10, patient=ehr.patient_id)
    for export in good[:4]:
        outbox.add(export)
    bad = outbox.add(item(reading("heart_rate", at=good[0].readings[0].measured_at.replace(year=2025)),
                          patient="no-such-patient"))  # fmt: skip
    for export in good[4:]:
        outbox.add(export)
    with client_for(ehr.base_url) as client:
        worker = make_worker(outbox, client, mapper)
        drain(worker, outbox)
    assert outbox.count("sent") == 10 and outbox.count("parked") == 1
    reason = outbox.rows[bad].reason or ""
    assert "HTTP 400" in reason and "Patient/no-such-patient does not resolve" in reason
    assert len(stored_observations(ehr)) == 10
    assert ehr.server.stats()["transactions_failed"] == 1  # atomic: nothing of it was stored


def test_unattributed_refusal_is_isolated_by_splitting(ehr: Ehr, mapper: ObservationMapper) -> None:
    outbox = MemoryOutbox()
    for export in series(8, patient=ehr.patient_id):
        outbox.add(export)
    # the bundle of 8, then its halves of 4 and 2 and the single first row are refused
    # without naming an entry: only that row is parked, every other row is delivered
    ehr.server.inject({"action": "status", "status": 400, "count": 4})
    with client_for(ehr.base_url) as client:
        worker = make_worker(outbox, client, mapper)
        drain(worker, outbox)
    assert outbox.count("sent") == 7 and outbox.count("parked") == 1
    assert outbox.rows[1].state == "parked" and "HTTP 400" in (outbox.rows[1].reason or "")
    assert len(stored_observations(ehr)) == 7


def test_unmappable_rows_are_parked_without_a_request(ehr: Ehr, mapper: ObservationMapper) -> None:
    outbox = MemoryOutbox()
    row = outbox.add(item(reading("heart_rate"), patient=None))
    with client_for(ehr.base_url) as client:
        worker = make_worker(outbox, client, mapper)
        drain(worker, outbox)
        assert client.requests_sent == 0
    assert outbox.rows[row].state == "parked"
    assert outbox.rows[row].reason == "cannot map: the patient has no FHIR Patient id"


def test_worker_failure_inside_a_claim_releases_rows_unchanged(ehr: Ehr, mapper: ObservationMapper) -> None:
    """A worker that dies mid-bundle records nothing: the rows go out again, once."""
    outbox = MemoryOutbox()
    for export in series(5, patient=ehr.patient_id):
        outbox.add(export)

    class Crash(BaseException):
        pass

    with client_for(ehr.base_url) as client:

        class CrashingAfterSend:
            def transaction(self, bundle: dict[str, object]) -> list[object]:
                client.transaction(bundle)  # the EHR stores the bundle ...
                raise Crash  # ... and the worker dies before recording it

        crashing = ExportWorker(outbox, CrashingAfterSend(), mapper)  # type: ignore[arg-type]
        with pytest.raises(Crash):
            crashing.run_once()
        assert outbox.count("pending") == 5 and all(r.attempts == 0 for r in outbox.rows.values())
        drain(make_worker(outbox, client, mapper), outbox)
    assert outbox.count("sent") == 5
    assert len(stored_observations(ehr)) == 5


def test_garbage_from_the_server_is_transient(ehr: Ehr) -> None:
    with httpx.Client() as http:
        answer = http.post(
            f"{ehr.base_url}", content=b"{not json", headers={"Content-Type": "application/fhir+json"}
        )
    assert answer.status_code == 400

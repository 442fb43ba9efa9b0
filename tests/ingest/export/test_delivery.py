"""Readings stored by the pipeline reach the real local FHIR server through the PostgreSQL outbox,
exactly once: every metric, EHR outages (down, 503, 429, lost answers), refused entries, patients
linked late, racing workers, and Devices created once."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from psycopg_pool import ConnectionPool

from fhir_export.auth import NoAuth
from fhir_export.client import FhirClient, RetryPolicy, build_http_client
from fhir_export.mapping import ObservationMapper
from fhir_export.table import build_table
from fhir_export.worker import Backoff, ExportWorker
from ingest.export import store
from ingest.export.fhir_devices import DeviceRegistry
from ingest.export.outbox import PgOutbox
from tests.support.export import Home, add_patient, at, bp, ehr_patient, hr, make_home
from tests.support.fhir_checks import assert_valid
from tests.support.fhir_test_server import FhirTestServer
from tests.support.tcpproxy import TcpProxy

FAST = RetryPolicy(attempts=3, initial_s=0.01, max_wait_s=2.0, jitter_s=0.01)


@contextmanager
def worker_for(
    pool: ConnectionPool, base_url: str, *, name: str = "w", bundle: int = 100, timeout_s: float = 10.0,
    lease_s: float = 60.0,
) -> Iterator[ExportWorker]:  # fmt: skip
    mapper = ObservationMapper(build_table())
    with build_http_client(timeout_s=timeout_s, connect_timeout_s=2.0) as http:
        client = FhirClient(http, base_url, NoAuth(), retry=FAST)
        registry = DeviceRegistry(client, pool, base_url=client.base_url, device_system=mapper.device_system)
        outbox = PgOutbox(pool, worker=name, lease_s=lease_s)
        yield ExportWorker(
            outbox, registry, mapper, bundle_size=bundle, backoff=Backoff(initial_s=5), rng=random.Random(7)
        )


def drain(worker: ExportWorker, home: Home, rounds: int = 20) -> None:
    """Run the worker until nothing is left to send, making deferred rows due each round."""
    for _ in range(rounds):
        home.make_due()
        if worker.run_once() == 0:
            return
    raise AssertionError("the outbox did not drain")


def observations(server: FhirTestServer, **params: str) -> list[dict[str, Any]]:
    return server.search("Observation", **params)


def assert_once_each(server: FhirTestServer, expected: int) -> list[dict[str, Any]]:
    found = observations(server)
    values = [o["identifier"][0]["value"] for o in found]
    assert len(values) == len(set(values)) == expected, values
    return found


EVERY_METRIC = [
    hr(72, minute=0, status=["irregular_pulse"]),
    {"metric": "respiratory_rate", "value": 16, "unit": "/min", "measured_at": at(1)},
    {"metric": "spo2", "value": 97, "unit": "%", "measured_at": at(2)},
    {"metric": "body_temperature", "value": 98.6, "unit": "[degF]", "measured_at": at(3)},
    *bp(128, 84, 99, minute=4),
    {"metric": "body_weight", "value": 181.4, "unit": "[lb_av]", "measured_at": at(5)},
    {"metric": "blood_glucose", "value": 5.8, "unit": "mmol/L", "measured_at": at(6)},
    {"metric": "steps", "value": 5120, "unit": "{steps}", "measured_at": at(7)},
]


def test_every_metric_arrives_once_as_a_valid_observation(home: Home, ehr: FhirTestServer) -> None:
    ehr_patient(ehr)
    home.ingest(EVERY_METRIC)
    assert len(home.rows()) == 8  # the three pressures are one panel
    with worker_for(home.pool, ehr.base_url) as worker:
        drain(worker, home)
        found = assert_once_each(ehr, 8)
        requests = ehr.stats()["requests"]
        drain(worker, home)  # nothing left: no request
        assert ehr.stats()["requests"] == requests
    (device,) = ehr.search("Device")
    assert_valid(device)
    with home.pool.connection() as conn:
        stored = conn.execute("SELECT ehr_base_url, device_id, fhir_reference FROM fhir_devices").fetchall()
    assert stored == [(ehr.base_url, home.device_id, f"Device/{device['id']}")]
    for resource in found:
        resource.pop("id"), resource.pop("meta", {}).pop("versionId", None)
        assert_valid(resource)
        assert resource["subject"] == {"reference": "Patient/pat-1"}
        assert resource["device"] == {"reference": f"Device/{device['id']}"}
    panel = next(o for o in found if o["code"]["coding"][0]["code"] == "85354-9")
    assert [c["code"]["coding"][0]["code"] for c in panel["component"]] == ["8480-6", "8462-4", "8478-0"]
    pulse = next(o for o in found if o["code"]["coding"][0]["code"] == "8867-4")
    assert pulse["note"] == [{"text": "Device status: irregular_pulse"}]
    rows = home.rows()
    assert {r["status"] for r in rows} == {"sent"}
    assert {r["fhir_reference"].split("/")[0] for r in rows} == {"Observation"}
    assert all(r["created_in_ehr"] for r in rows)


def test_racing_workers_send_each_row_once_and_create_each_device_once(
    pool: ConnectionPool, ehr: FhirTestServer
) -> None:
    ehr_patient(ehr)
    home = make_home(pool, fhir_patient_id="pat-1")
    for n in (2, 3):
        add_patient(pool, mrn=f"MRN-{n}", fhir_patient_id="pat-1", device_id=f"dev-{n}")
    for device in (home.device_id, "dev-2", "dev-3"):
        home.ingest([hr(60 + i % 50, minute=i / 4) for i in range(150)], device_id=device)
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            with worker_for(pool, ehr.base_url, name=name, bundle=20) as worker:
                while worker.run_once():
                    pass
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert_once_each(ehr, 450)
    assert len(ehr.search("Device")) == 3
    stats = ehr.stats()
    assert stats["entries_existing"] == 0  # no row and no Device was ever sent twice
    assert {r["status"] for r in home.rows()} == {"sent"}
    claimed_by = {r["claimed_by"] for r in home.rows()}
    assert claimed_by == {None}


def test_ehr_down_defers_the_rows_then_delivers_them_once(home: Home, ehr: FhirTestServer) -> None:
    ehr_patient(ehr)
    home.ingest([hr(60 + i, minute=i) for i in range(10)])
    with TcpProxy("127.0.0.1", ehr.port) as proxy:
        base_url = f"http://127.0.0.1:{proxy.port}/fhir"
        with worker_for(home.pool, base_url) as worker:
            proxy.cut()
            assert worker.run_once() == 10
            rows = home.rows()
            assert {(r["status"], r["attempts"]) for r in rows} == {("pending", 1)}
            assert all("unreachable" in r["last_error"] for r in rows)
            assert all(r["next_attempt_at"] >= r["updated_at"] + timedelta(seconds=2) for r in rows)
            assert worker.run_once() == 0  # deferred: not due yet
            proxy.restore()
            drain(worker, home)
    assert_once_each(ehr, 10)
    assert {(r["status"], r["last_error"]) for r in home.rows()} == {("sent", None)}


def test_503_then_429_with_a_long_retry_after(home: Home, ehr: FhirTestServer) -> None:
    ehr_patient(ehr)
    home.ingest([hr(60 + i, minute=i) for i in range(5)])
    with worker_for(home.pool, ehr.base_url) as worker:
        ehr.inject({"action": "status", "status": 503, "count": 3})  # every attempt of the call
        worker.run_once()
        rows = home.rows()
        assert {(r["status"], r["attempts"]) for r in rows} == {("pending", 1)}
        assert all("injected fault" in r["last_error"] for r in rows)
        home.make_due()
        ehr.inject({"action": "status", "status": 429, "retry_after": 300})
        worker.run_once()
        rows = home.rows()
        assert {r["attempts"] for r in rows} == {2}
        assert all(r["next_attempt_at"] >= r["updated_at"] + timedelta(seconds=299) for r in rows)
        drain(worker, home)
    assert_once_each(ehr, 5)


def test_lost_answers_never_duplicate(home: Home, ehr: FhirTestServer) -> None:
    """The EHR stored the bundle but the answer was lost, on every attempt of the call."""
    ehr_patient(ehr)
    home.ingest([hr(59, minute=-1)])
    with worker_for(home.pool, ehr.base_url) as worker:
        drain(worker, home)  # the Device exists: the next bundle is the Observations alone
        home.ingest([hr(60 + i, minute=i) for i in range(30)])
        ehr.inject({"action": "drop", "when": "after_commit", "count": 3})
        assert worker.run_once() == 30
        assert {(r["status"], r["attempts"]) for r in home.rows()[1:]} == {("pending", 1)}
        drain(worker, home)
    assert_once_each(ehr, 31)
    rows = home.rows()[1:]
    assert {(r["status"], r["created_in_ehr"]) for r in rows} == {("sent", False)}


def test_slow_ehr_times_out_and_the_retry_finds_what_it_stored(home: Home, ehr: FhirTestServer) -> None:
    ehr_patient(ehr)
    home.ingest([hr(60 + i, minute=i) for i in range(12)])
    ehr.inject({"action": "delay", "when": "after_commit", "delay_ms": 1500})
    with worker_for(home.pool, ehr.base_url, timeout_s=0.5) as worker:
        drain(worker, home)
    assert_once_each(ehr, 12)


def test_a_refused_entry_is_parked_with_the_reason_and_the_rest_delivered(
    pool: ConnectionPool, ehr: FhirTestServer
) -> None:
    ehr_patient(ehr)
    home = make_home(pool, fhir_patient_id="pat-1")
    add_patient(pool, mrn="MRN-2", fhir_patient_id="not-in-the-ehr", device_id="dev-2")
    home.ingest([hr(60 + i, minute=i) for i in range(6)])
    home.ingest([hr(90, minute=3)], device_id="dev-2")
    with worker_for(pool, ehr.base_url) as worker:
        drain(worker, home)
    assert_once_each(ehr, 6)
    (failed,) = home.rows(status="failed")
    assert failed["device_id"] == "dev-2"
    assert (
        "HTTP 400" in failed["last_error"]
        and "Patient/not-in-the-ehr does not resolve" in failed["last_error"]
    )
    # The operator fixes the link and requeues: it goes out.
    ehr_patient(ehr, "not-in-the-ehr")
    with pool.connection() as conn, conn.transaction():
        store.requeue(conn, failed["id"])
    with worker_for(pool, ehr.base_url) as worker:
        drain(worker, home)
    assert_once_each(ehr, 7)


def test_a_patient_linked_later_has_the_waiting_rows_delivered(
    pool: ConnectionPool, ehr: FhirTestServer
) -> None:
    home = make_home(pool, fhir_patient_id=None)
    home.ingest([hr(70, minute=0), *bp(minute=1)])
    with worker_for(pool, ehr.base_url) as worker:
        drain(worker, home)
        assert ehr.stats()["transactions"] == 0 and observations(ehr) == []
        assert {r["status"] for r in home.rows()} == {"waiting"}
        ehr_patient(ehr, "pat-late")
        with pool.connection() as conn, conn.transaction():
            store.update_patient(conn, home.patient_id, fhir_patient_id="pat-late", set_fhir_patient_id=True)
        drain(worker, home)
    found = assert_once_each(ehr, 2)
    assert {o["subject"]["reference"] for o in found} == {"Patient/pat-late"}


def test_a_component_after_its_panel_was_sent_stays_out_of_the_ehr(home: Home, ehr: FhirTestServer) -> None:
    ehr_patient(ehr)
    home.ingest(bp(128, 84, minute=0))
    with worker_for(home.pool, ehr.base_url) as worker:
        drain(worker, home)
        home.ingest(bp(None, None, 99, minute=0))
        drain(worker, home)
    (panel,) = assert_once_each(ehr, 1)
    assert len(panel["component"]) == 2
    assert [r["status"] for r in home.rows()] == ["sent", "failed"]


def test_a_known_device_is_not_created_again(home: Home, ehr: FhirTestServer) -> None:
    ehr_patient(ehr)
    home.ingest([hr(70, minute=0)])
    with worker_for(home.pool, ehr.base_url) as worker:
        drain(worker, home)
    home.ingest([hr(71, minute=1)])
    with worker_for(home.pool, ehr.base_url, name="fresh") as worker:  # nothing cached in memory
        drain(worker, home)
    assert len(ehr.search("Device")) == 1
    assert ehr.stats()["entries_existing"] == 0
    assert_once_each(ehr, 2)

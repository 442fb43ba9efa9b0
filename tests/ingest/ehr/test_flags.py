"""Alerts as FHIR Flags (contract ehr-interop.md §2) through the PostgreSQL outbox to the real local
FHIR server: the row is written in the alert's transaction, the Flag goes once, waits for its
Observations (never a dangling flag-detail), waits for the patient's link, and turns inactive
(with period.end) when the alert is resolved."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from fhir.resources.R4B import get_fhir_model_class
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from fhir_export.auth import NoAuth
from fhir_export.client import FhirClient, RetryPolicy, build_http_client
from fhir_export.flag_delivery import FlagSender
from fhir_export.mapping import ObservationMapper
from fhir_export.outbox import Delivered
from fhir_export.reads import FhirReader
from fhir_export.table import build_table
from fhir_export.worker import Backoff, ExportWorker
from ingest.alerts.events import PendingEvent
from ingest.alerts.public import ALERT_COLUMNS
from ingest.db.rows import fetch_one
from ingest.export import store as export_store
from ingest.export.fhir_devices import DeviceRegistry
from ingest.export.flags import queue_flags
from ingest.export.outbox import PgOutbox
from ingest.store import roster
from tests.support.export import T0, Home, ehr_patient, hr, make_home
from tests.support.fhir_test_server import FhirTestServer

FAST = RetryPolicy(attempts=2, initial_s=0.01, max_wait_s=1.0, jitter_s=0.01)
PRIORITY = "http://hl7.org/fhir/StructureDefinition/flag-priority"
DETAIL = "http://hl7.org/fhir/StructureDefinition/flag-detail"


@contextmanager
def worker_for(
    pool: ConnectionPool, ehr: FhirTestServer, *, detail_wait_s: float = 3600
) -> Iterator[ExportWorker]:
    mapper = ObservationMapper(build_table())
    with build_http_client(timeout_s=10, connect_timeout_s=2.0) as http:
        client = FhirClient(http, ehr.base_url, NoAuth(), retry=FAST)
        registry = DeviceRegistry(client, pool, base_url=client.base_url, device_system=mapper.device_system)
        backoff = Backoff(initial_s=5)
        flags = FlagSender(
            client, FhirReader(http, ehr.base_url, NoAuth()), mapper, backoff, detail_wait_s=detail_wait_s
        )
        yield ExportWorker(
            PgOutbox(pool, worker="t"), registry, mapper, backoff=backoff, rng=random.Random(3), flags=flags
        )


def open_alert(home: Home, *, minute: float = 0, severity: str = "critical") -> UUID:
    """A heart-rate alert on the reading at ``minute``, opened and queued as the engine does."""
    at = T0 + timedelta(minutes=minute)
    with home.pool.connection() as conn, conn.transaction():
        row = fetch_one(
            conn,
            "INSERT INTO alerts (clinic_id, patient_id, rule_key, kind, metric, device_id, severity,"
            " value, unit, message, onset_at, latest_at)"
            " VALUES ('default', %s, 'threshold:heart_rate', 'threshold', 'heart_rate', %s, %s, 142,"
            " '/min', 'heart rate 142 /min above critical high 130', %s, %s)"
            f" RETURNING {ALERT_COLUMNS}",
            (home.patient_id, home.device_id, severity, at, at),
        )
        assert row is not None
        queue_flags(conn, [PendingEvent("opened", row)])
    alert_id: UUID = row["id"]
    return alert_id


def resolve_alert(home: Home, alert_id: UUID) -> None:
    with home.pool.connection() as conn, conn.transaction():
        row = fetch_one(
            conn,
            "UPDATE alerts SET status = 'resolved', resolved_at = now(), resolution = 'manual'"
            f" WHERE id = %s RETURNING {ALERT_COLUMNS}",
            (alert_id,),
        )
        assert row is not None
        queue_flags(conn, [PendingEvent("resolved", row)])


def flag_row(home: Home) -> dict[str, Any]:
    (row,) = home.rows(kind="flag")
    return row


def flags(ehr: FhirTestServer) -> list[dict[str, Any]]:
    return ehr.search("Flag")


def drain(worker: ExportWorker, home: Home, rounds: int = 10) -> None:
    for _ in range(rounds):
        home.make_due()
        if worker.run_once() == 0:
            return
    raise AssertionError("the outbox did not drain")


def hold_readings(home: Home) -> None:
    home.execute("UPDATE outbox SET next_attempt_at = now() + interval '1 hour' WHERE kind <> 'flag'")


def test_flag_lifecycle_open_then_resolve_exactly_once(pool: ConnectionPool, ehr: FhirTestServer) -> None:
    ehr_patient(ehr, "pat-1")
    home = make_home(pool, fhir_patient_id="pat-1")
    home.ingest([hr(142, minute=0)])
    alert_id = open_alert(home)
    assert flag_row(home)["status"] == "pending"  # written with the alert
    assert flag_row(home)["item_ref"] == str(alert_id)

    with worker_for(pool, ehr) as worker:
        drain(worker, home)
        (flag,) = flags(ehr)
        (observation,) = ehr.search("Observation")
        assert flag["status"] == "active"
        assert flag["identifier"] == [{"system": "urn:rpm-ingest:alert", "value": str(alert_id)}]
        assert flag["subject"] == {"reference": "Patient/pat-1"}
        assert flag["code"]["text"] == (
            "Critical: Heart rate 142 /min above critical high 130 (remote patient monitoring)"
        )
        assert flag["category"][0]["coding"][0] == {
            "system": "http://terminology.hl7.org/CodeSystem/flag-category", "code": "clinical",
            "display": "Clinical",
        }  # fmt: skip
        priority = [e for e in flag["extension"] if e["url"] == PRIORITY]
        assert priority[0]["valueCodeableConcept"]["coding"][0]["code"] == "PH"
        details = [e["valueReference"]["reference"] for e in flag["extension"] if e["url"] == DETAIL]
        assert details == [f"Observation/{observation['id']}"]
        assert "end" not in flag["period"]
        get_fhir_model_class("Flag").model_validate(flag)  # FHIR structure
        assert flag_row(home)["status"] == "sent"

        # sent again (the answer was lost, the lease ran out): the conditional create finds it
        home.execute("UPDATE outbox SET status = 'pending' WHERE kind = 'flag'")
        drain(worker, home)
        assert len(flags(ehr)) == 1

        resolve_alert(home, alert_id)
        row = flag_row(home)
        assert (row["status"], row["export_key"]) == ("pending", "flag:resolved")
        drain(worker, home)
        (flag,) = flags(ehr)
        assert flag["status"] == "inactive"
        assert flag["period"]["end"] >= flag["period"]["start"]
        assert flag_row(home)["status"] == "sent"
        drain(worker, home)
        assert len(flags(ehr)) == 1


def test_flag_waits_for_its_observation(pool: ConnectionPool, ehr: FhirTestServer) -> None:
    ehr_patient(ehr, "pat-1")
    home = make_home(pool, fhir_patient_id="pat-1")
    home.ingest([hr(142, minute=0), hr(150, minute=1)])
    alert_id = open_alert(home)
    home.execute("UPDATE alerts SET latest_at = %s WHERE id = %s", (T0 + timedelta(minutes=1), alert_id))
    hold_readings(home)  # the Observations are not in the EHR yet
    with worker_for(pool, ehr) as worker:
        assert worker.run_once() == 1
        assert flags(ehr) == []
        row = flag_row(home)
        assert row["status"] == "pending"
        assert row["last_error"].startswith("waiting for its Observation(s) to reach the EHR first: ")
        assert "F0F1F2F3F4F5-8867-4-" in row["last_error"]

        drain(worker, home)  # the Observations go, then the Flag
        (flag,) = flags(ehr)
        ids = {f"Observation/{o['id']}" for o in ehr.search("Observation")}
        details = {e["valueReference"]["reference"] for e in flag["extension"] if e["url"] == DETAIL}
        assert details == ids and len(ids) == 2  # the opening and the newest reading


def test_a_flag_whose_observation_never_comes_goes_without_it(
    pool: ConnectionPool, ehr: FhirTestServer
) -> None:
    """Bounded wait: an Observation refused for good must not keep the alert out of the EHR."""
    ehr_patient(ehr, "pat-1")
    home = make_home(pool, fhir_patient_id="pat-1")
    home.ingest([hr(142)])
    open_alert(home)
    home.execute("UPDATE alerts SET opened_at = now() - interval '2 hours'")
    home.execute("UPDATE outbox SET status = 'failed', last_error = 'refused' WHERE kind <> 'flag'")
    with worker_for(pool, ehr, detail_wait_s=3600) as worker:
        drain(worker, home)
    (flag,) = flags(ehr)
    assert [e for e in flag["extension"] if e["url"] == DETAIL] == []


def test_unlinked_patient_flag_waits_then_goes_once_linked(pool: ConnectionPool, ehr: FhirTestServer) -> None:
    home = make_home(pool, fhir_patient_id=None)
    home.ingest([hr(142)])
    open_alert(home, severity="warning")
    assert flag_row(home)["status"] == "waiting"
    with worker_for(pool, ehr) as worker:
        assert worker.run_once() == 0
        ehr_patient(ehr, "late-1")
        with pool.connection() as conn, conn.transaction():
            export_store.update_patient(
                conn, home.patient_id, fhir_patient_id="late-1", set_fhir_patient_id=True
            )
        assert flag_row(home)["status"] == "pending"
        drain(worker, home)
    (flag,) = flags(ehr)
    assert flag["subject"] == {"reference": "Patient/late-1"}
    assert flag["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "PM"


def test_resolved_while_the_active_flag_is_in_flight(pool: ConnectionPool, ehr: FhirTestServer) -> None:
    """The alert is resolved while a worker holds the active Flag: that worker's 'sent' is not
    recorded, the row goes again, and the EHR ends with one inactive Flag."""
    ehr_patient(ehr, "pat-1")
    home = make_home(pool, fhir_patient_id="pat-1")
    home.ingest([hr(142)])
    alert_id = open_alert(home)
    with worker_for(pool, ehr) as worker:
        drain(worker, home)  # Observation and active Flag
        flag_id = flag_row(home)["id"]
        home.execute(
            "UPDATE outbox SET status = 'pending', next_attempt_at = now() WHERE id = %s", (flag_id,)
        )
        outbox = PgOutbox(pool, worker="slow")
        with outbox.claim(10) as claim:  # a worker holds the row, the active Flag in hand
            (held,) = claim.items
            assert held.item.flag is not None and not held.item.flag.resolved
            resolve_alert(home, alert_id)  # meanwhile
            claim.mark_sent([Delivered(held.id, "Flag/x", False)])
        assert flag_row(home)["status"] == "pending"  # its claim was taken away: nothing recorded
        drain(worker, home)
    (flag,) = flags(ehr)
    assert flag["status"] == "inactive"


def test_alert_resolved_before_its_flag_went_sends_one_inactive_flag(
    pool: ConnectionPool, ehr: FhirTestServer
) -> None:
    ehr_patient(ehr, "pat-1")
    home = make_home(pool, fhir_patient_id="pat-1")
    home.ingest([hr(142)])
    alert_id = open_alert(home)
    resolve_alert(home, alert_id)
    with worker_for(pool, ehr) as worker:
        drain(worker, home)
    (flag,) = flags(ehr)
    assert flag["status"] == "inactive"
    assert len(home.rows(kind="flag")) == 1


def test_flags_that_cannot_go_are_parked_with_the_reason(pool: ConnectionPool, ehr: FhirTestServer) -> None:
    ehr_patient(ehr, "pat-1")
    home = make_home(pool, fhir_patient_id="pat-1")
    blank = open_alert(home, minute=0)
    home.execute("UPDATE alerts SET metric = NULL, message = '   ' WHERE id = %s", (blank,))
    with worker_for(pool, ehr) as worker:
        drain(worker, home)
        row = flag_row(home)
        assert (row["status"], row["last_error"]) == ("failed", "cannot map: the alert has no message")

        home.execute("DELETE FROM outbox")
        home.execute("UPDATE alerts SET status = 'resolved', resolved_at = now() WHERE id = %s", (blank,))
        refused = open_alert(home, minute=5)
        home.execute("UPDATE alerts SET metric = NULL WHERE id = %s", (refused,))
        ehr.inject({"action": "status", "status": 422, "text": "Flag not allowed here", "match": "/fhir"})
        drain(worker, home)
        row = flag_row(home)
        assert row["status"] == "failed"
        assert row["last_error"] == "EHR refused the Flag (HTTP 422): Flag not allowed here"
        assert flags(ehr) == []


def test_alert_of_a_patient_without_device_has_no_row(pool: ConnectionPool) -> None:
    with pool.connection() as conn, conn.transaction():
        patient = roster.create_patient(
            conn, clinic_id="default", mrn="M", display_name="N", fhir_patient_id=None
        )
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "INSERT INTO alerts (clinic_id, patient_id, rule_key, kind, metric, severity, message,"
                f" onset_at, latest_at) VALUES ('default', %s, 'missing:x', 'missing_data', 'heart_rate',"
                f" 'warning', 'no heart rate for 2 days', %s, %s) RETURNING {ALERT_COLUMNS}",
                (patient["id"], datetime.now(UTC), datetime.now(UTC)),
            )
            row = cur.fetchone()
        assert row is not None
        queue_flags(conn, [PendingEvent("opened", row)])
        assert conn.execute("SELECT count(*) FROM outbox").fetchone() == (0,)

"""ECG strips reach the EHR (the local FHIR test server) as one valid Observation each, exactly
once: through the outbox (kind ecg, item_ref = the strip's id, destination fhir), written in the
ingest transaction, delivered by the FHIR export's workers, decoded back to the samples."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from devices.ecg import LEAD_NAMES, strip_id
from fhir_export.ecg import decode_sampled_data
from ingest.ecg.component import ecg_component
from ingest.export.component import fhir_export_component
from ingest.settings import Settings
from tests.support.ecg import at, register_cardiac, wire_strip
from tests.support.fhir_checks import validate_structure
from tests.support.fhir_test_server import FhirTestServer, run_fhir_server
from tests.support.service import RunningService, running_service
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def fhir_server() -> Iterator[FhirTestServer]:
    with run_fhir_server() as server:
        yield server


@pytest.fixture
def ehr(fhir_server: FhirTestServer) -> FhirTestServer:
    fhir_server.reset()
    fhir_server.put({"resourceType": "Patient", "id": "pat-ecg"})
    return fhir_server


@pytest.fixture
def svc(settings: Settings, ehr: FhirTestServer, tmp_path: Path) -> Iterator[RunningService]:
    configured = settings.model_copy(
        update={"fhir_base_url": ehr.base_url, "fhir_poll_interval_s": 0.1, "fhir_lease_s": 5}
    )
    with running_service(configured, factories=[ecg_component, fhir_export_component]) as running:
        yield running


def outbox(db_url: str) -> list[dict[str, Any]]:
    with psycopg.connect(db_url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(
            "SELECT destination, kind, item_ref, status, last_error, fhir_reference FROM outbox"
            " WHERE kind = 'ecg' ORDER BY id"
        )
        return cur.fetchall()


def ekg_observations(ehr: FhirTestServer) -> list[dict[str, Any]]:
    return ehr.search("Observation", code="http://loinc.org|11524-6")


def post(client: httpx.Client, device: str, *readings: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/v1/readings", json={"device_id": device, "readings": list(readings)})
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def test_a_strip_becomes_one_observation_per_strip_once(
    svc: RunningService, ehr: FhirTestServer, db_url: str
) -> None:
    with svc.services.transaction() as conn:
        register_cardiac(conn, "PATCH-F")
        conn.execute("UPDATE patients SET fhir_patient_id = 'pat-ecg' WHERE mrn = 'MRN-PATCH-F'")
    admin = svc.client(svc.token("admin"))
    six = wire_strip(
        "PATCH-F",
        20,
        leads=LEAD_NAMES[:6],
        rate=500,
        seconds=10,
        rhythm="af",
        interpretation="atrial_fibrillation",
    )
    single = wire_strip("PATCH-F", 10, seconds=30)
    assert post(admin, "PATCH-F", six, single)["accepted"] == 2
    ids = {str(strip_id("PATCH-F", at(20))), str(strip_id("PATCH-F", at(10)))}
    assert {row["item_ref"] for row in outbox(db_url)} == ids
    wait_until(
        lambda: all(row["status"] == "sent" for row in outbox(db_url)),
        60,
        "both strips sent",
    )
    assert post(admin, "PATCH-F", six)["duplicates"] == 1  # stored once: no second row
    found = ekg_observations(ehr)
    assert len(found) == 2 and len(outbox(db_url)) == 2
    by_time = {obs["effectiveDateTime"]: obs for obs in found}
    af = by_time[six["measured_at"]]
    validate_structure(af)
    assert af["subject"] == {"reference": "Patient/pat-ecg"}
    assert af["category"][0]["coding"][0]["code"] == "procedure"
    assert [c["code"]["coding"][0]["code"] for c in af["component"]] == [
        "131329", "131330", "131389", "131390", "131391", "131392",
    ]  # fmt: skip
    for component, name in zip(af["component"], LEAD_NAMES[:6], strict=True):
        assert decode_sampled_data(component["valueSampledData"]) == six["leads"][name]
        assert component["valueSampledData"]["period"] == 2
    assert af["note"] == [{"text": "Device interpretation: atrial_fibrillation"}]
    assert (
        decode_sampled_data(by_time[single["measured_at"]]["component"][0]["valueSampledData"])
        == (single["leads"]["I"])
    )
    assert af["device"]["reference"].startswith("Device/")


def test_a_resent_row_finds_its_observation_and_an_unlinked_patient_waits(
    svc: RunningService, ehr: FhirTestServer, db_url: str
) -> None:
    admin = svc.client(svc.token("admin"))
    with svc.services.transaction() as conn:
        patient = register_cardiac(conn, "PATCH-G")
    post(admin, "PATCH-G", wire_strip("PATCH-G", 5, seconds=5))
    wait_until(lambda: outbox(db_url)[0]["status"] == "waiting", 10, "the row to wait for a link")
    r = admin.patch(f"/v1/patients/{patient}", json={"fhir_patient_id": "pat-ecg"})
    assert r.status_code == 200, r.text
    wait_until(lambda: outbox(db_url)[0]["status"] == "sent", 60, "the strip sent once linked")
    # as if the answer had been lost: the worker sends the row again
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE outbox SET status = 'pending', next_attempt_at = now() WHERE kind = 'ecg'")
    wait_until(lambda: outbox(db_url)[0]["status"] == "sent", 60, "the strip sent again")
    assert len(ekg_observations(ehr)) == 1


def test_a_row_whose_strip_is_gone_is_parked_with_the_reason(
    svc: RunningService, ehr: FhirTestServer, db_url: str
) -> None:
    admin = svc.client(svc.token("admin"))
    with svc.services.transaction() as conn:
        patient = register_cardiac(conn, "PATCH-H")
    post(admin, "PATCH-H", wire_strip("PATCH-H", 5, seconds=1))
    wait_until(lambda: outbox(db_url)[0]["status"] == "waiting", 10, "the row to wait for a link")
    with psycopg.connect(db_url) as conn:
        conn.execute("DELETE FROM ecg_strips")
    r = admin.patch(f"/v1/patients/{patient}", json={"fhir_patient_id": "pat-ecg"})
    assert r.status_code == 200, r.text
    wait_until(lambda: outbox(db_url)[0]["status"] == "failed", 60, "the row parked")
    assert "is not stored" in outbox(db_url)[0]["last_error"]
    assert ekg_observations(ehr) == []
    # the exports API shows the parked row and its reason, as for readings
    rows = admin.get("/v1/exports/rows", params={"status": "failed"})
    assert rows.status_code == 200, rows.text
    [row] = [r for r in rows.json() if r["kind"] == "ecg"]
    assert row["destination"] == "fhir" and "is not stored" in row["reason"]

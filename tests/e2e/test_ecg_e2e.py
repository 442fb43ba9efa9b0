"""ECG strips end to end, as a new user meets them: `rpm-ingest simulate --kinds ecg_recorder`
publishes strips over MQTT to the whole service (every component, as `serve` runs it, with an EHR
and a PACS configured); each strip is on the dashboard's ECG paper, one Observation in the EHR (the
local FHIR server) and one DICOM waveform object in the PACS (Orthanc), once each."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fhir_export.ecg import decode_sampled_data
from ingest.runtime import default_components
from ingest.settings import Settings
from tests.e2e.helpers import sign_in
from tests.support.ecg import register_cardiac
from tests.support.fhir_test_server import FhirTestServer, run_fhir_server
from tests.support.orthanc import Orthanc
from tests.support.service import RunningService, running_service
from tests.support.waiting import wait_until

pytestmark = pytest.mark.browser
RPM_INGEST = str(Path(sys.executable).with_name("rpm-ingest"))
DEVICE = "ECGE2E-00000"


@pytest.fixture(scope="module")
def ehr() -> Iterator[FhirTestServer]:
    with run_fhir_server() as server:
        server.put({"resourceType": "Patient", "id": "pat-ecg-e2e"})
        yield server


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    with Orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        yield server


@pytest.fixture
def service(settings: Settings, ehr: FhirTestServer, pacs: Orthanc) -> Iterator[RunningService]:
    """The whole service with the EHR and the PACS configured (the page fixture uses it)."""
    configured = settings.model_copy(
        update={
            "fhir_base_url": ehr.base_url,
            "fhir_poll_interval_s": 0.2,
            "dicomweb_url": pacs.dicomweb_url,
            "dicom_poll_interval_s": 0.2,
        }
    )
    with running_service(configured, factories=default_components()) as svc:
        yield svc


def outbox(svc: RunningService) -> list[tuple[str, str]]:
    with svc.services.transaction() as conn:
        rows = conn.execute("SELECT destination, status FROM outbox WHERE kind = 'ecg' ORDER BY 1").fetchall()
    return [(r[0], r[1]) for r in rows]


def test_simulated_strips_reach_the_dashboard_the_ehr_and_the_pacs_once(
    page: Any, service: RunningService, ehr: FhirTestServer, pacs: Orthanc
) -> None:
    with service.services.transaction() as conn:
        patient = register_cardiac(conn, DEVICE, mrn="MRN-ECG-E2E")
        conn.execute("UPDATE patients SET fhir_patient_id = 'pat-ecg-e2e' WHERE id = %s", (patient,))
    s = service.services.settings
    env = {
        **os.environ,
        "RPM_MQTT_URL": s.mqtt_url or "",
        "RPM_MQTT_TOPIC_PREFIX": s.mqtt_topic_prefix,
        "RPM_DATA_DIR": str(s.data_dir),
        "RPM_LOG_LEVEL": "WARNING",
    }
    done = subprocess.run(
        [RPM_INGEST, "simulate", "--kinds", "ecg_recorder", "--devices", "1", "--id-prefix", "ECGE2E-",
         "--count", "2", "--rate", "10", "--client-id", f"sim-{s.mqtt_client_id}"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    admin = service.client(service.token("admin"))
    strips = lambda: admin.get(f"/v1/patients/{patient}/ecg").json()["strips"]  # noqa: E731
    wait_until(lambda: len(strips()) == 2, 60, "two simulated strips stored")
    wait_until(
        lambda: outbox(service) == [("dicom", "sent")] * 2 + [("fhir", "sent")] * 2,
        120,
        "both strips sent to the EHR and the PACS",
    )

    observations = ehr.search("Observation", code="http://loinc.org|11524-6", subject="Patient/pat-ecg-e2e")
    assert len(observations) == 2
    assert len(pacs.qido("instances", PatientID="MRN-ECG-E2E")) == 2
    newest = admin.get(f"/v1/ecg/{strips()[0]['id']}").json()
    [observation] = [o for o in observations if o["effectiveDateTime"] == newest["measured_at"]]
    for component, (name, samples) in zip(observation["component"], newest["leads"].items(), strict=True):
        assert component["code"]["text"] == f"Lead {name}"
        assert decode_sampled_data(component["valueSampledData"]) == samples

    # the same strip again (a device retrying): stored once, sent once
    wire = {k: newest[k] for k in ("measured_at", "sample_rate_hz", "unit", "leads", "interpretation")}
    r = admin.post("/v1/readings", json={"device_id": DEVICE, "readings": [{"metric": "ecg", **wire}]})
    assert r.json()["duplicates"] == 1
    assert len(outbox(service)) == 4

    # and on the dashboard's ECG paper
    sign_in(page, service.base_url, service.token("clinician", clinic="default"))
    page.goto(f"{service.base_url}/dashboard/#/patients/{patient}")
    paper = page.locator("svg.ecg-paper")
    paper.wait_for()
    assert paper.get_attribute("data-leads") == ",".join(newest["leads"])
    assert page.locator("button.ecg-pick").count() == 2
    admin.close()

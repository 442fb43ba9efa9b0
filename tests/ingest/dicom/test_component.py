"""The DICOM export in the running service: an ECG strip sent over HTTP reaches the PACS (Orthanc)
once and /metrics counts it; with no ``RPM_DICOMWEB_URL`` nothing runs and strips get no DICOM
rows."""

from __future__ import annotations

from typing import Any

import httpx

from ingest.dicom.component import dicom_component
from ingest.settings import Settings
from tests.support.ecg import register_cardiac, wire_strip
from tests.support.orthanc import Orthanc
from tests.support.service import running_service
from tests.support.waiting import wait_for_value


def post(client: httpx.Client, device_id: str, *readings: dict[str, Any]) -> httpx.Response:
    return client.post("/v1/readings", json={"device_id": device_id, "readings": list(readings)})


def test_a_strip_sent_over_http_is_stored_in_the_pacs_once(settings: Settings, orthanc: Orthanc) -> None:
    settings = settings.model_copy(
        update={"dicomweb_url": orthanc.dicomweb_url, "dicom_poll_interval_s": 0.1}
    )
    with running_service(settings) as service:
        with service.services.transaction() as conn:
            register_cardiac(conn, "KARDIA-PACS", mrn="MRN-PACS")
        admin = service.client(service.token("admin"))
        strip = wire_strip("KARDIA-PACS", 5, leads=("I", "II"), rate=300, seconds=30)
        assert post(admin, "KARDIA-PACS", strip).json()["accepted"] == 1

        found = wait_for_value(
            lambda: orthanc.qido("instances", PatientID="MRN-PACS"), 60, "the strip in the PACS"
        )
        sent = {"status": "sent", "destination": "dicom"}
        exported = wait_for_value(
            lambda: admin.get("/v1/exports/rows", params=sent).json(), 30, "dicom row sent"
        )
        assert post(admin, "KARDIA-PACS", strip).json()["duplicates"] == 1  # the same strip again
        metrics = service.client().get("/metrics").text
    assert 'rpm_dicom_outbox_rows{status="sent"} 1.0' in metrics
    assert 'rpm_dicom_export_rows_total{outcome="sent"} 1.0' in metrics
    assert 'rpm_dicom_export_rows_total{outcome="parked"} 0.0' in metrics
    [instance] = found
    assert instance["00080016"]["Value"] == ["1.2.840.10008.5.1.4.1.1.9.1.2"]
    [row] = exported
    assert (row["destination"], row["kind"]) == ("dicom", "ecg")
    assert row["fhir_reference"] == instance["00080018"]["Value"][0]  # the SOP Instance UID
    assert len(orthanc.instances()) == 1


def test_without_a_pacs_nothing_runs(settings: Settings) -> None:
    assert settings.dicomweb_url is None
    with running_service(settings) as service:
        component = dicom_component(service.services)
        assert component.start is None and component.stop is None
        with service.services.transaction() as conn:
            register_cardiac(conn, "KARDIA-NOPACS")
        admin = service.client(service.token("admin"))
        assert post(admin, "KARDIA-NOPACS", wire_strip("KARDIA-NOPACS", 5)).json()["accepted"] == 1
        with service.services.transaction() as conn:
            destinations = [r[0] for r in conn.execute("SELECT destination FROM outbox").fetchall()]
    assert "dicom" not in destinations

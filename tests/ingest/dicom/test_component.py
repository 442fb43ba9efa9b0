"""The DICOM export in the running service: an ECG strip sent over HTTP reaches the PACS (Orthanc)
once and /metrics counts it; with no PACS configured nothing runs and strips get no DICOM rows; the
settings pick the transport (STOW-RS or C-STORE)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from dicom_export.cstore import CStoreClient
from dicom_export.stow import StowClient
from ingest.dicom.component import EXTRAS_KEY, dicom_component, storage_scp
from ingest.dicom.delivery import DicomDelivery
from ingest.errors import ConfigurationError
from ingest.settings import Settings
from tests.support.ecg import register_cardiac, wire_strip
from tests.support.orthanc import Orthanc
from tests.support.service import RunningService, running_service
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


def test_the_transport_follows_the_settings(settings: Settings, orthanc: Orthanc) -> None:
    """DICOMweb when RPM_DICOMWEB_URL is set (it wins over RPM_DICOM_AE), else C-STORE; a malformed
    RPM_DICOM_AE stops start-up with the reason."""
    with_both = settings.model_copy(
        update={"dicomweb_url": "http://rpm:secret@127.0.0.1:9/dicom-web", "dicom_ae": orthanc.ae_address}
    )
    with running_service(with_both) as service:
        delivery = _delivery(service)
        assert isinstance(delivery.pacs, StowClient)
        assert delivery.target == "http://127.0.0.1:9/dicom-web (STOW-RS)"  # no credentials shown
    only_ae = settings.model_copy(update={"dicom_ae": orthanc.ae_address, "dicom_calling_ae": "CLINIC1"})
    with running_service(only_ae) as service:
        delivery = _delivery(service)
        assert isinstance(delivery.pacs, CStoreClient)
        assert delivery.target == f"{orthanc.ae_address} (C-STORE as CLINIC1)"
    for bad in ({"dicom_ae": "ORTHANC"}, {"dicom_ae": "A@h:1", "dicom_calling_ae": "A\\B"}):
        with pytest.raises(ConfigurationError, match="RPM_DICOM_AE / RPM_DICOM_CALLING_AE"):
            storage_scp(settings.model_copy(update=bad))  # the component's first step


def _delivery(service: RunningService) -> DicomDelivery:
    [component] = [c for c in service.runtime.components if c.name == "dicom export"]
    delivery = component.extras[EXTRAS_KEY]
    assert isinstance(delivery, DicomDelivery)
    return delivery


def test_a_strip_goes_to_a_pacs_without_dicomweb_by_c_store(settings: Settings, orthanc: Orthanc) -> None:
    pacs = {"dicom_ae": orthanc.ae_address, "dicom_poll_interval_s": 0.1}
    with running_service(settings.model_copy(update=pacs)) as service:
        with service.services.transaction() as conn:
            register_cardiac(conn, "KARDIA-DIMSE", mrn="MRN-DIMSE")
        admin = service.client(service.token("admin"))
        strip = wire_strip("KARDIA-DIMSE", 5, leads=("I",), rate=300, seconds=30)
        assert post(admin, "KARDIA-DIMSE", strip).json()["accepted"] == 1
        [found] = wait_for_value(
            lambda: orthanc.qido("instances", PatientID="MRN-DIMSE"), 60, "the strip in the PACS"
        )
        sent = {"status": "sent", "destination": "dicom"}
        [row] = wait_for_value(lambda: admin.get("/v1/exports/rows", params=sent).json(), 30, "row sent")
    assert row["fhir_reference"] == found["00080018"]["Value"][0]

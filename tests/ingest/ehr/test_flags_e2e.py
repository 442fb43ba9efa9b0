"""The service end to end: a reading out of range opens an alert through the real engine, the EHR
gets its Observation and then its Flag; resolving the alert through the API closes the Flag.
RPM_FHIR_EXPORT_ALERTS=false sends no Flags."""

from __future__ import annotations

from typing import Any

from ingest.alerts.component import alerts_component
from ingest.export.component import fhir_export_component
from ingest.settings import Settings
from tests.support.alerts import Clinic, ago, alert_settings, reading
from tests.support.fhir_test_server import FhirTestServer
from tests.support.service import running_service
from tests.support.waiting import wait_for_value, wait_until

DETAIL = "http://hl7.org/fhir/StructureDefinition/flag-detail"


def ehr_settings(settings: Settings, ehr: FhirTestServer, **extra: Any) -> Settings:
    return alert_settings(settings).model_copy(
        update={"fhir_base_url": ehr.base_url, "fhir_poll_interval_s": 0.1, **extra}
    )


def test_alert_becomes_a_flag_and_closes_on_resolve(settings: Settings, ehr: FhirTestServer) -> None:
    ehr.put({"resourceType": "Patient", "id": "pat-9"})
    with running_service(ehr_settings(settings, ehr), [alerts_component, fhir_export_component]) as svc:
        clinic = Clinic(svc, svc.client(svc.token("admin")))
        pid = clinic.patient("HR-1")
        clinic.http.patch(f"/v1/patients/{pid}", json={"fhir_patient_id": "pat-9"})
        clinic.post("HR-1", reading("heart_rate", 145, ago(minutes=5)))  # above critical high 130
        (alert,) = clinic.active(pid)

        flag = wait_for_value(lambda: next(iter(ehr.search("Flag")), None), timeout_s=30, what="the Flag")
        (observation,) = ehr.search("Observation")
        assert flag["status"] == "active"
        assert flag["identifier"][0]["value"] == alert["id"]
        assert [e["valueReference"] for e in flag["extension"] if e["url"] == DETAIL] == [
            {"reference": f"Observation/{observation['id']}"}
        ]
        assert flag["code"]["text"] == (
            "Critical: Heart rate 145 bpm above critical high 130 (remote patient monitoring)"
        )

        r = clinic.http.post(f"/v1/alerts/{alert['id']}/resolve", json={"note": "seen, rate control"})
        assert r.status_code == 200, r.text
        wait_until(lambda: ehr.search("Flag")[0]["status"] == "inactive", timeout_s=30, what="inactive Flag")
        (closed,) = ehr.search("Flag")
        assert closed["period"]["end"] >= closed["period"]["start"]
        sent = clinic.http.get("/v1/exports/rows", params={"status": "sent", "destination": "fhir"}).json()
        assert "flag" in {row["kind"] for row in sent}


def test_flags_can_be_switched_off(settings: Settings, ehr: FhirTestServer) -> None:
    ehr.put({"resourceType": "Patient", "id": "pat-9"})
    off = ehr_settings(settings, ehr, fhir_export_alerts=False)
    with running_service(off, [alerts_component, fhir_export_component]) as svc:
        clinic = Clinic(svc, svc.client(svc.token("admin")))
        pid = clinic.patient("HR-1")
        clinic.http.patch(f"/v1/patients/{pid}", json={"fhir_patient_id": "pat-9"})
        clinic.post("HR-1", reading("heart_rate", 145, ago(minutes=5)))
        assert len(clinic.active(pid)) == 1
        wait_until(lambda: len(ehr.search("Observation")) == 1, timeout_s=30, what="the Observation")
        with svc.services.transaction() as conn:
            assert conn.execute("SELECT count(*) FROM outbox WHERE kind = 'flag'").fetchone() == (0,)
    assert ehr.search("Flag") == []

"""End to end: readings posted over HTTP and published over MQTT to the whole service (every
component, as ``serve`` runs it) appear in the real local FHIR server as valid Observations,
exactly once, with each of the three auth modes, after an EHR outage, and for a patient linked to
the EHR only later."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingest.runtime import default_components
from ingest.settings import Settings
from tests.e2e.helpers import NOW, iso, publish
from tests.support.fhir_checks import assert_valid
from tests.support.fhir_test_server import FhirTestServer, run_fhir_server
from tests.support.service import RunningService, running_service
from tests.support.tcpproxy import TcpProxy

RPM_INGEST = Path(sys.executable).with_name("rpm-ingest")
CLIENT_ID = "rpm-ingest-e2e"


@pytest.fixture(scope="module")
def fhir_server() -> Iterator[FhirTestServer]:
    with run_fhir_server() as server:
        yield server


@pytest.fixture
def ehr(fhir_server: FhirTestServer) -> FhirTestServer:
    fhir_server.reset()
    fhir_server.put({"resourceType": "Patient", "id": "pat-e2e"})
    return fhir_server


def settings_for(
    db_url: str, tmp_path: Path, topic_prefix: str, mqtt_url: str, fhir_base_url: str, **extra: Any
) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=db_url,
        mqtt_url=mqtt_url,
        mqtt_topic_prefix=topic_prefix,
        mqtt_client_id=f"svc-{topic_prefix.split('/')[0]}",
        data_dir=tmp_path,
        fhir_base_url=fhir_base_url,
        fhir_workers=2,
        fhir_bundle_size=10,
        fhir_poll_interval_s=0.1,
        fhir_lease_s=5,
        fhir_export_alerts=False,  # Observations only here; alerts as Flags: tests/ingest/ehr
        **extra,
    )


def wait_for(
    check: Callable[[], bool], what: str, timeout_s: float = 60, state: Callable[[], object] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f": {state()}" if state else ""))
        time.sleep(0.1)


def enrol(admin: httpx.Client, mrn: str, device: str, device_type: str, fhir_id: str | None) -> str:
    body: dict[str, Any] = {"mrn": mrn, "display_name": "E2e Example"}
    if fhir_id:
        body["fhir_patient_id"] = fhir_id
    r = admin.post("/v1/patients", json=body)
    assert r.status_code == 201, r.text
    patient: str = r.json()["id"]
    r = admin.post(
        "/v1/devices", json={"id": device, "type": device_type, "manufacturer": "Acme", "model": "M1"}
    )
    assert r.status_code == 201, r.text
    since = iso(NOW - timedelta(days=2))
    r = admin.put(f"/v1/devices/{device}/assignment", json={"patient_id": patient, "since": since})
    assert r.status_code == 200, r.text
    return patient


def at(minutes: int) -> str:
    return iso(NOW - timedelta(hours=1) + timedelta(minutes=minutes))


HTTP_READINGS = [
    {
        "metric": "heart_rate",
        "value": 72,
        "unit": "/min",
        "measured_at": at(0),
        "status": ["irregular_pulse"],
    },
    {"metric": "systolic_bp", "value": 17.3, "unit": "kPa", "measured_at": at(1)},
    {"metric": "diastolic_bp", "value": 84, "unit": "mm[Hg]", "measured_at": at(1)},
    {"metric": "mean_arterial_pressure", "value": 99, "unit": "mm[Hg]", "measured_at": at(1)},
    {"metric": "body_weight", "value": 181.4, "unit": "[lb_av]", "measured_at": at(2)},
    {"metric": "body_temperature", "value": 98.6, "unit": "[degF]", "measured_at": at(3)},
    {"metric": "blood_glucose", "value": 5.8, "unit": "mmol/L", "measured_at": at(4)},
    {"metric": "steps", "value": 4200, "unit": "{steps}", "measured_at": at(5)},
]
MQTT_MESSAGES = [
    {"readings": [{"metric": "spo2", "value": 96 + i % 3, "unit": "%", "measured_at": at(10 + i)},
                  {"metric": "heart_rate", "value": 60 + i, "unit": "/min", "measured_at": at(10 + i)}]}
    for i in range(6)
]  # fmt: skip
EXPECTED = 6 + 12  # HTTP: 5 single readings and 1 blood-pressure panel; MQTT: 6 x (SpO2, pulse)


def counts(admin: httpx.Client) -> dict[str, int]:
    result: dict[str, int] = admin.get("/v1/exports").json()["counts"]
    return result


def ingest_everything(svc: RunningService, settings: Settings, admin: httpx.Client) -> None:
    enrol(admin, "MRN-HTTP", "CUFF-E2E", "blood_pressure_monitor", "pat-e2e")
    enrol(admin, "MRN-MQTT", "OXI-E2E", "pulse_oximeter", "pat-e2e")
    for _ in range(2):  # the second time every reading is a duplicate: nothing more to export
        r = admin.post("/v1/readings", json={"device_id": "CUFF-E2E", "readings": HTTP_READINGS})
        assert r.status_code == 200 and not r.json()["rejected"], r.text
    for message in MQTT_MESSAGES + MQTT_MESSAGES[:2]:  # redelivered messages are absorbed
        publish(settings, "OXI-E2E", message)


def assert_in_ehr_once(server: FhirTestServer, expected: int) -> list[dict[str, Any]]:
    server.set_auth("none")  # the test reads what was stored without the service's credentials
    found = server.search("Observation")
    identifiers = [o["identifier"][0]["value"] for o in found]
    assert len(identifiers) == len(set(identifiers)) == expected, identifiers
    devices = server.search("Device")
    assert sorted(d["identifier"][0]["value"] for d in devices) == ["CUFF-E2E", "OXI-E2E"]
    for resource in [*found, *devices]:
        resource.pop("id"), resource.pop("meta", {}).pop("versionId", None)
        assert_valid(resource)
    assert {o["subject"]["reference"] for o in found} == {"Patient/pat-e2e"}
    return found


def auth_settings(mode: str, server: FhirTestServer, tmp_path: Path) -> dict[str, Any]:
    if mode == "none":
        return {}
    if mode == "bearer":
        server.set_auth("bearer", bearer_token="e2e-static-token")
        return {"fhir_auth": "bearer", "fhir_token": "e2e-static-token"}
    key = tmp_path / "fhir-client.pem"
    keygen = subprocess.run([str(RPM_INGEST), "fhir", "keygen", "--alg", "ES384", "--out", str(key)],
                            capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    jwks = subprocess.run([str(RPM_INGEST), "fhir", "jwks", "--key", str(key)],
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    assert jwks.stdout == keygen.stdout and "PRIVATE" not in jwks.stdout and '"d"' not in jwks.stdout
    import json

    server.set_auth("smart", token_ttl=30)
    server.register_client(CLIENT_ID, json.loads(jwks.stdout))
    return {"fhir_auth": "smart-backend", "fhir_client_id": CLIENT_ID, "fhir_private_key_file": key}


@pytest.mark.parametrize("auth", ["none", "bearer", "smart-backend"])
def test_http_and_mqtt_readings_reach_the_ehr_once(
    ehr: FhirTestServer, db_url: str, tmp_path: Path, topic_prefix: str, mqtt_url: str, auth: str
) -> None:
    extra = auth_settings(auth, ehr, tmp_path)
    settings = settings_for(db_url, tmp_path, topic_prefix, mqtt_url, ehr.base_url, **extra)
    with running_service(settings, default_components()) as svc, svc.client(svc.token("admin")) as admin:
        ingest_everything(svc, settings, admin)
        wait_for(lambda: counts(admin)["sent"] == EXPECTED, "every reading to reach the EHR",
                 state=lambda: admin.get("/v1/exports").json())  # fmt: skip
        assert counts(admin) == {"pending": 0, "waiting": 0, "sent": EXPECTED, "failed": 0}
        found = assert_in_ehr_once(ehr, EXPECTED)
        metrics = svc.client().get("/metrics").text
        assert f'rpm_fhir_outbox_rows{{status="sent"}} {EXPECTED}.0' in metrics
        assert f'rpm_fhir_export_rows_total{{outcome="sent"}} {EXPECTED}.0' in metrics
    panel = next(o for o in found if o["code"]["coding"][0]["code"] == "85354-9")
    systolic = panel["component"][0]
    assert systolic["valueQuantity"]["value"] == pytest.approx(129.76, abs=0.01)  # 17.3 kPa
    assert any("kPa" in n["text"] for n in panel["note"])
    stats = ehr.stats()
    assert stats["entries_existing"] == 0 and stats["unauthorized"] == 0
    if auth == "smart-backend":
        assert 1 <= stats["tokens_issued"] <= 4  # cached: one per worker at most, and refreshed


def test_smart_token_expiry_mid_flow_is_refreshed(
    ehr: FhirTestServer, db_url: str, tmp_path: Path, topic_prefix: str, mqtt_url: str
) -> None:
    extra = auth_settings("smart-backend", ehr, tmp_path)
    settings = settings_for(db_url, tmp_path, topic_prefix, mqtt_url, ehr.base_url, **extra)
    with running_service(settings, default_components()) as svc, svc.client(svc.token("admin")) as admin:
        enrol(admin, "MRN-HTTP", "CUFF-E2E", "blood_pressure_monitor", "pat-e2e")
        first = [{"metric": "heart_rate", "value": 70, "unit": "/min", "measured_at": at(0)}]
        admin.post("/v1/readings", json={"device_id": "CUFF-E2E", "readings": first})
        wait_for(lambda: counts(admin)["sent"] == 1, "the first reading")
        ehr.expire_tokens()
        more = [
            {"metric": "heart_rate", "value": 71 + i, "unit": "/min", "measured_at": at(1 + i)}
            for i in range(5)
        ]
        admin.post("/v1/readings", json={"device_id": "CUFF-E2E", "readings": more})
        wait_for(lambda: counts(admin)["sent"] == 6, "the readings after the token expired")
    ehr.set_auth("none")
    assert len(ehr.search("Observation")) == 6
    stats = ehr.stats()
    assert stats["unauthorized"] >= 1 and stats["tokens_issued"] >= 2


def test_an_ehr_outage_then_recovery_delivers_each_reading_once(
    ehr: FhirTestServer, db_url: str, tmp_path: Path, topic_prefix: str, mqtt_url: str
) -> None:
    with TcpProxy("127.0.0.1", ehr.port) as proxy:
        base_url = f"http://127.0.0.1:{proxy.port}/fhir"
        settings = settings_for(db_url, tmp_path, topic_prefix, mqtt_url, base_url)
        with running_service(settings, default_components()) as svc, svc.client(svc.token("admin")) as admin:
            proxy.cut()
            ingest_everything(svc, settings, admin)

            def deferred() -> bool:
                rows = admin.get("/v1/exports/rows", params={"status": "pending", "limit": 1000}).json()
                return len(rows) == EXPECTED and all(r["attempts"] >= 1 for r in rows)

            wait_for(deferred, "every row to be deferred while the EHR is unreachable")
            pending = admin.get("/v1/exports/rows", params={"status": "pending", "limit": 1000}).json()
            assert all("unreachable" in r["reason"] for r in pending)
            assert counts(admin)["sent"] == 0
            proxy.restore()
            ehr.inject({"action": "status", "status": 503, "retry_after": 1, "count": 2},
                       {"action": "drop", "when": "after_commit"})  # fmt: skip
            for row in pending:  # the operator does not wait for the backoff
                assert admin.post(f"/v1/exports/{row['id']}/retry").status_code == 200
            wait_for(lambda: counts(admin)["sent"] == EXPECTED, "delivery after the outage")
    assert_in_ehr_once(ehr, EXPECTED)


def test_a_patient_linked_later_is_exported_then(
    ehr: FhirTestServer, db_url: str, tmp_path: Path, topic_prefix: str, mqtt_url: str
) -> None:
    settings = settings_for(db_url, tmp_path, topic_prefix, mqtt_url, ehr.base_url)
    with running_service(settings, default_components()) as svc, svc.client(svc.token("admin")) as admin:
        patient = enrol(admin, "MRN-LATE", "OXI-E2E", "pulse_oximeter", None)
        for message in MQTT_MESSAGES[:3]:
            publish(settings, "OXI-E2E", message)
        wait_for(lambda: counts(admin)["waiting"] == 6, "the rows to wait for the FHIR id")
        time.sleep(0.5)
        assert ehr.stats()["transactions"] == 0
        summary = admin.get("/v1/exports").json()
        assert summary["waiting"][0]["patient_id"] == patient and summary["waiting"][0]["rows"] == 6
        r = admin.patch(f"/v1/patients/{patient}", json={"fhir_patient_id": "pat-e2e"})
        assert r.status_code == 200
        wait_for(lambda: counts(admin)["sent"] == 6, "the released rows to be sent")
    assert len(ehr.search("Observation")) == 6

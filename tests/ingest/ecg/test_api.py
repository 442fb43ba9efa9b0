"""The ECG strips API: list and fetch as in the contract, staff only, tenancy and audit."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from devices.ecg import LEAD_NAMES, strip_id
from ingest.dashboard.component import dashboard_component
from ingest.ecg.component import ecg_component
from ingest.settings import Settings
from tests.support.ecg import at, iso, register_cardiac, wire_strip
from tests.support.service import RunningService, running_service


@pytest.fixture
def ecg_service(settings: Settings) -> Any:
    with running_service(settings, factories=[ecg_component]) as svc:
        yield svc


def post(client: httpx.Client, device_id: str, *readings: dict[str, Any]) -> None:
    r = client.post("/v1/readings", json={"device_id": device_id, "readings": list(readings)})
    assert r.status_code == 200 and not r.json()["rejected"], r.text


def test_list_and_fetch_as_the_contract_says(ecg_service: RunningService) -> None:
    svc = ecg_service
    admin = svc.client(svc.token("admin"))
    with svc.services.transaction() as conn:
        patient = register_cardiac(conn, "KARDIA-A")
    older = wire_strip("KARDIA-A", 60, seconds=30, interpretation="sinus_rhythm")
    newer = wire_strip(
        "KARDIA-A",
        10,
        rhythm="af",
        leads=LEAD_NAMES[:6],
        rate=500,
        seconds=8,
        interpretation="atrial_fibrillation",
    )
    post(admin, "KARDIA-A", older, newer)
    clinician = svc.client(svc.token("clinician", clinic="default"))
    r = clinician.get(f"/v1/patients/{patient}/ecg")
    assert r.status_code == 200, r.text
    newer_id, older_id = str(strip_id("KARDIA-A", at(10))), str(strip_id("KARDIA-A", at(60)))
    assert r.json() == {
        "strips": [
            {"id": newer_id, "measured_at": iso(at(10)), "device_id": "KARDIA-A", "sample_rate_hz": 500,
             "leads": list(LEAD_NAMES[:6]), "duration_s": 8.0, "interpretation": "atrial_fibrillation"},
            {"id": older_id, "measured_at": iso(at(60)), "device_id": "KARDIA-A", "sample_rate_hz": 300,
             "leads": ["I"], "duration_s": 30.0, "interpretation": "sinus_rhythm"},
        ]
    }  # fmt: skip
    window = clinician.get(f"/v1/patients/{patient}/ecg", params={"since": iso(at(61)), "until": iso(at(30))})
    assert [s["id"] for s in window.json()["strips"]] == [older_id]
    r = clinician.get(f"/v1/ecg/{newer_id}")
    assert r.status_code == 200
    body = r.json()
    assert body == {
        "id": newer_id,
        "patient_id": patient,
        "device_id": "KARDIA-A",
        "measured_at": iso(at(10)),
        "sample_rate_hz": 500,
        "unit": "uV",
        "leads": newer["leads"],
        "interpretation": "atrial_fibrillation",
    }
    assert list(body["leads"]) == list(LEAD_NAMES[:6])


def test_bad_queries_are_refused(ecg_service: RunningService) -> None:
    svc = ecg_service
    admin = svc.client(svc.token("admin"))
    with svc.services.transaction() as conn:
        patient = register_cardiac(conn, "KARDIA-B")
    naive = admin.get(f"/v1/patients/{patient}/ecg", params={"since": "2026-12-01T08:00:00"})
    assert naive.status_code == 422 and "time zone" in naive.text
    backwards = admin.get(f"/v1/patients/{patient}/ecg", params={"since": iso(at(1)), "until": iso(at(2))})
    assert backwards.status_code == 422
    assert admin.get("/v1/ecg/not-a-uuid").status_code == 422
    assert admin.get(f"/v1/ecg/{strip_id('KARDIA-B', at(1))}").status_code == 404
    assert admin.get("/v1/patients/00000000-0000-0000-0000-000000000000/ecg").status_code == 404


def test_other_clinics_and_devices_cannot_read_strips_and_every_read_is_audited(
    ecg_service: RunningService,
) -> None:
    svc = ecg_service
    admin = svc.client(svc.token("admin"))
    assert admin.post("/v1/clinics", json={"id": "north", "name": "North"}).status_code == 201
    with svc.services.transaction() as conn:
        patient = register_cardiac(conn, "KARDIA-N", clinic_id="north")
    post(admin, "KARDIA-N", wire_strip("KARDIA-N", 5))
    sid = strip_id("KARDIA-N", at(5))
    outsider = svc.client(svc.token("clinician", clinic="default"))
    assert outsider.get(f"/v1/ecg/{sid}").status_code == 404
    assert outsider.get(f"/v1/patients/{patient}/ecg").status_code == 404
    device = svc.client(svc.token("device", device="KARDIA-N"))
    assert device.get(f"/v1/ecg/{sid}").status_code == 403
    insider = svc.client(svc.token("clinician", clinic="north"))
    assert insider.get(f"/v1/ecg/{sid}").status_code == 200
    with svc.services.transaction() as conn:
        rows = conn.execute(
            "SELECT route, status, patient_id::text FROM audit_log WHERE route LIKE '%%ecg%%' ORDER BY id"
        ).fetchall()
    assert ("/v1/ecg/{strip_id}", 200, patient) in rows
    assert ("/v1/ecg/{strip_id}", 404, None) in rows
    assert ("/v1/patients/{patient_id}/ecg", 404, patient) in rows


def test_a_strip_measured_before_its_patient_s_assignment_is_not_listed_for_them(
    ecg_service: RunningService,
) -> None:
    svc = ecg_service
    admin = svc.client(svc.token("admin"))
    with svc.services.transaction() as conn:
        first = register_cardiac(conn, "KARDIA-C", mrn="MRN-C1")
    post(admin, "KARDIA-C", wire_strip("KARDIA-C", 30))
    r = admin.post("/v1/patients", json={"mrn": "MRN-C2", "display_name": "Next Patient"})
    second = r.json()["id"]
    r = admin.put("/v1/devices/KARDIA-C/assignment", json={"patient_id": second, "since": iso(at(20))})
    assert r.status_code == 200, r.text
    post(admin, "KARDIA-C", wire_strip("KARDIA-C", 10))
    firsts = admin.get(f"/v1/patients/{first}/ecg").json()["strips"]
    seconds = admin.get(f"/v1/patients/{second}/ecg").json()["strips"]
    assert [s["measured_at"] for s in firsts] == [iso(at(30))]
    assert [s["measured_at"] for s in seconds] == [iso(at(10))]


def test_the_dashboard_counts_strips_as_readings(settings: Settings) -> None:
    with running_service(settings, factories=[ecg_component, dashboard_component]) as svc:
        admin = svc.client(svc.token("admin"))
        with svc.services.transaction() as conn:
            patient = register_cardiac(conn, "KARDIA-D")
        post(admin, "KARDIA-D", wire_strip("KARDIA-D", 30), wire_strip("KARDIA-D", 20))
        detail = admin.get(f"/v1/dashboard/patients/{patient}").json()
    # the strips are readings for the summary: when the last came, the day counted, no "no readings"
    assert detail["last_reading_at"].replace("+00:00", "Z") == iso(at(20))
    assert detail["days_with_readings_30d"] >= 1 and detail["attention"] == []
    [device] = detail["devices"]
    assert device["id"] == "KARDIA-D"
    assert device["last_reading_at"].replace("+00:00", "Z") == iso(at(20))
    assert device["last_seen_at"] is not None

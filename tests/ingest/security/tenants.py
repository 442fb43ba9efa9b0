"""Two clinics in one deployment, each with a clinician, a patient, a device and readings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx

from devices.ecg import strip_id
from tests.support.service import RunningService

NOW = datetime.now(UTC).replace(microsecond=0)
ECG_AT = NOW - timedelta(minutes=4)


def ecg_strip_id(device_id: str) -> str:
    """The id of the ECG strip :func:`make_tenant` stores for ``device_id``."""
    return str(strip_id(device_id, ECG_AT))


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


@dataclass
class Tenant:
    clinic: str
    token: str
    client: httpx.Client
    patient_id: str
    patient_name: str
    mrn: str
    device_id: str
    alert_id: str
    webhook_id: str
    export_id: int

    def markers(self) -> list[str]:
        """Strings that must never reach another clinic's caller."""
        return [self.patient_name, self.mrn, self.patient_id, self.device_id, self.alert_id, self.webhook_id]


def make_tenant(svc: RunningService, admin: httpx.Client, clinic: str, name: str, mrn: str) -> Tenant:
    r = admin.post("/v1/clinics", json={"id": clinic, "name": f"{clinic.title()} Clinic"})
    assert r.status_code == 201, r.text
    r = admin.post("/v1/patients", json={"mrn": mrn, "display_name": name, "clinic": clinic})
    assert r.status_code == 201, r.text
    patient_id = r.json()["id"]
    device_id = f"{clinic.upper()}-CUFF-7"
    r = admin.post("/v1/devices", json={"id": device_id, "type": "bp_cuff", "clinic": clinic})
    assert r.status_code == 201, r.text
    r = admin.put(
        f"/v1/devices/{device_id}/assignment",
        json={"patient_id": patient_id, "since": iso(NOW - timedelta(days=30))},
    )
    assert r.status_code == 200, r.text
    readings = [
        {
            "metric": "heart_rate",
            "value": 61.375,
            "unit": "/min",
            "measured_at": iso(NOW - timedelta(minutes=m)),
        }
        for m in (30, 20, 10)
    ]
    # and one critically high heart rate: an alert of this clinic
    readings.append(
        {
            "metric": "heart_rate",
            "value": 141.5,
            "unit": "/min",
            "measured_at": iso(NOW - timedelta(minutes=5)),
        }
    )
    r = admin.post("/v1/readings", json={"device_id": device_id, "readings": readings})
    assert r.status_code == 200 and r.json()["accepted"] == 4, r.text
    # and an ECG strip (its id is derived from device and time: ecg_strip_id())
    strip = {"metric": "ecg", "measured_at": iso(ECG_AT), "sample_rate_hz": 300, "unit": "uV",
             "leads": {"I": [12, 15, 18]}, "interpretation": f"{clinic} sinus rhythm"}
    r = admin.post("/v1/readings", json={"device_id": device_id, "readings": [strip]})
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    r = admin.get("/v1/alerts", params={"patient_id": patient_id})
    assert r.status_code == 200 and r.json()["alerts"], r.text
    alert_id = r.json()["alerts"][0]["id"]
    r = admin.post(f"/v1/clinics/{clinic}/webhooks", json={"url": f"http://127.0.0.1:9/{clinic}-hook"})
    assert r.status_code == 201, r.text
    webhook_id = r.json()["id"]
    # the readings wait for export until the patient is linked to the EHR
    r = admin.get("/v1/exports/rows", params={"status": "waiting", "clinic": clinic})
    assert r.status_code == 200 and r.json(), r.text
    export_id = r.json()[0]["id"]
    token = svc.token("clinician", clinic=clinic, name=f"nurse-{clinic}")
    return Tenant(
        clinic, token, svc.client(token), patient_id, name, mrn, device_id, alert_id, webhook_id, export_id
    )


def make_tenants(svc: RunningService) -> tuple[Tenant, Tenant, httpx.Client]:
    admin = svc.client(svc.token("admin", name="site-admin"))
    north = make_tenant(svc, admin, "north", "Alice Northwood", "MRN-N-4711")
    south = make_tenant(svc, admin, "south", "Bartholomew Southey", "MRN-S-0815")
    return north, south, admin

"""Lifecycle: acknowledge and resolve with who, when and a note; permissions; full history."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.alerts import Clinic, ago, reading
from tests.support.service import RunningService


def open_alert(
    clinic: Clinic, device: str = "CUFF-1", mrn: str = "MRN-1", clinic_id: str = "default"
) -> dict[str, Any]:
    pid = clinic.patient(device, mrn, clinic=clinic_id)
    clinic.post(device, reading("systolic_bp", 190, ago(minutes=5)))
    [alert] = clinic.active(pid)
    return alert


def test_acknowledge_then_resolve_records_who_when_and_notes(svc: RunningService, clinic: Clinic) -> None:
    alert = open_alert(clinic)
    with svc.client(svc.token("clinician", clinic="default", name="Dr Nurse")) as nurse:
        r = nurse.post(f"/v1/alerts/{alert['id']}/acknowledge", json={"note": "calling the patient"})
        assert r.status_code == 200, r.text
        acked = r.json()
        assert (acked["status"], acked["acknowledged_by"], acked["acknowledge_note"]) == (
            "acknowledged",
            "Dr Nurse",
            "calling the patient",
        )
        assert acked["acknowledged_at"] is not None
        # acknowledging again changes nothing
        again = nurse.post(f"/v1/alerts/{alert['id']}/acknowledge").json()
        assert again["acknowledged_at"] == acked["acknowledged_at"]

        r = nurse.post(f"/v1/alerts/{alert['id']}/resolve", json={"note": "medication taken"})
        assert r.status_code == 200
        done = r.json()
        assert (done["status"], done["resolution"], done["resolved_by"], done["resolve_note"]) == (
            "resolved",
            "manual",
            "Dr Nurse",
            "medication taken",
        )
        assert nurse.post(f"/v1/alerts/{alert['id']}/resolve").status_code == 409
        assert nurse.post(f"/v1/alerts/{alert['id']}/acknowledge").status_code == 409

        detail = nurse.get(f"/v1/alerts/{alert['id']}").json()
        assert [(h["type"], h["actor"], h["note"]) for h in detail["history"]] == [
            ("opened", None, None),
            ("acknowledged", "Dr Nurse", "calling the patient"),
            ("resolved", "Dr Nurse", "medication taken"),
        ]


def test_a_device_token_cannot_touch_alerts(svc: RunningService, clinic: Clinic) -> None:
    alert = open_alert(clinic)
    with svc.client(svc.token("device", device="CUFF-1")) as device:
        for path in (f"/v1/alerts/{alert['id']}/acknowledge", f"/v1/alerts/{alert['id']}/resolve"):
            r = device.post(path, json={"note": "I am a cuff"})
            assert r.status_code == 403, r.text
        assert device.get("/v1/alerts").status_code == 403
        assert device.get(f"/v1/alerts/{alert['id']}").status_code == 403
        assert device.get("/v1/alerts/stream").status_code == 403
    assert clinic.detail(alert["id"])["status"] == "open"


def test_clinicians_only_see_their_clinic(svc: RunningService, clinic: Clinic) -> None:
    assert clinic.http.post("/v1/clinics", json={"id": "north", "name": "North"}).status_code == 201
    ours = open_alert(clinic, "CUFF-1", "MRN-1", "default")
    theirs = open_alert(clinic, "CUFF-2", "MRN-2", "north")
    with svc.client(svc.token("clinician", clinic="north")) as north:
        listed = north.get("/v1/alerts").json()["alerts"]
        assert [a["id"] for a in listed] == [theirs["id"]]
        assert north.get("/v1/alerts", params={"patient_id": ours["patient_id"]}).json()["alerts"] == []
        for r in (
            north.get(f"/v1/alerts/{ours['id']}"),
            north.post(f"/v1/alerts/{ours['id']}/acknowledge"),
            north.post(f"/v1/alerts/{ours['id']}/resolve"),
        ):
            assert r.status_code == 404, r.text
        assert north.post(f"/v1/alerts/{theirs['id']}/acknowledge").status_code == 200
    assert clinic.detail(ours["id"])["status"] == "open"
    assert len(clinic.alerts()) == 2  # admin sees both


def test_list_filters_and_pagination(clinic: Clinic) -> None:
    pid = clinic.patient("CUFF-1")
    clinic.post(
        "CUFF-1",
        reading("systolic_bp", 190, ago(minutes=9)),
        reading("blood_glucose", 60, ago(minutes=8)),
        reading("body_temperature", 38.5, ago(minutes=7)),
    )
    glucose = clinic.alerts(metric="blood_glucose")
    assert [a["metric"] for a in glucose] == ["blood_glucose"]
    assert [a["metric"] for a in clinic.alerts(severity="critical")] == ["blood_pressure"]
    assert len(clinic.alerts(severity="warning,critical", status="open", kind="threshold")) == 3
    clinic.http.post(f"/v1/alerts/{glucose[0]['id']}/acknowledge")
    assert [a["metric"] for a in clinic.alerts(status="acknowledged")] == ["blood_glucose"]

    seen: list[str] = []
    cursor = None
    while True:
        params = {"patient_id": pid, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = clinic.http.get("/v1/alerts", params=params).json()
        seen += [a["id"] for a in page["alerts"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 3


def test_bad_filters_and_notes_are_refused(clinic: Clinic) -> None:
    alert = open_alert(clinic)
    http: httpx.Client = clinic.http
    for params in (
        {"status": "closed"},
        {"severity": "panic"},
        {"kind": "'; DROP TABLE alerts; --"},
        {"patient_id": "not-a-uuid"},
        {"since": "2026-01-01T00:00:00"},
        {"cursor": "!!!"},
        {"cursor": "bm90IGEgY3Vyc29y"},
        {"limit": 0},
        {"limit": 100000},
        {"order": "sideways"},
    ):
        r = http.get("/v1/alerts", params=params)
        assert r.status_code == 422, (params, r.text)
    assert http.post(f"/v1/alerts/{alert['id']}/acknowledge", json={"note": "x" * 2001}).status_code == 422
    assert http.post(f"/v1/alerts/{alert['id']}/acknowledge", json={"note": 5}).status_code == 422
    assert http.post(f"/v1/alerts/{alert['id']}/acknowledge", json={"nope": 1}).status_code == 422
    acknowledge = f"/v1/alerts/{alert['id']}/acknowledge"
    as_json = {"content-type": "application/json"}
    assert http.post(acknowledge, content=b"{", headers=as_json).status_code == 422
    # A body that does not say it is JSON: 415 with what to send (not a confusing 422).
    assert http.post(acknowledge, content=b"{").status_code == 415
    assert http.post("/v1/alerts/00000000-0000-0000-0000-000000000000/resolve").status_code == 404
    assert http.post("/v1/alerts/not-an-id/resolve").status_code == 422
    assert clinic.detail(alert["id"])["status"] == "open"

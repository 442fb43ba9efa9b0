"""Thresholds and rule overrides through the API: malformed, out-of-range and hostile input is
refused with a reason and changes nothing; tenancy and roles are enforced."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.alerts import Clinic
from tests.support.service import RunningService

BAD_THRESHOLDS: list[tuple[Any, str]] = [
    ({"low": "50"}, "valid number"),
    ({"low": True}, "valid number"),
    ({"high": [1]}, "valid number"),
    ({"high": 1e7}, "less than or equal"),
    ({"low": -1e7}, "greater than or equal"),
    ({"low": 120, "high": 100}, "low must be below high"),
    ({"low": 100, "high": 100}, "low must be below high"),
    ({"critical_low": 60}, "critical_low must not be above low"),  # default low is 50
    ({"critical_high": 100}, "critical_high must not be below high"),  # default high is 110
    ({"hysteresis": 40}, "no room to clear"),
    ({"hysteresis": -1}, "greater than or equal"),
    ({"consecutive": 0}, "greater than or equal"),
    ({"consecutive": 2.5}, "valid integer"),
    ({"sustained_seconds": 10**9}, "less than or equal"),
    ({"debounce_critical": "yes"}, "valid boolean"),
    ({"enabled": 1}, "valid boolean"),
    ({"unknown": 1}, "Extra inputs"),
    ({"low": {"$gt": 0}}, "valid number"),
    ([1, 2], "valid dictionary"),
    ("low=1", "valid dictionary"),
]


@pytest.mark.parametrize(("body", "reason"), BAD_THRESHOLDS)
def test_bad_threshold_bodies_are_refused(clinic: Clinic, body: Any, reason: str) -> None:
    pid = clinic.patient("STRAP-1")
    r = clinic.http.put(f"/v1/patients/{pid}/thresholds/heart_rate", json=body)
    assert r.status_code == 422, r.text
    assert reason in str(r.json()["detail"]), r.text
    assert clinic.http.get(f"/v1/patients/{pid}/thresholds/heart_rate").json()["source"] == "default"


def test_non_finite_and_truncated_json_is_refused(clinic: Clinic) -> None:
    pid = clinic.patient("STRAP-1")
    url = f"/v1/patients/{pid}/thresholds/heart_rate"
    headers = {"content-type": "application/json"}
    for raw in (
        b'{"high": NaN}',
        b'{"high": Infinity}',
        b'{"high": 1e400}',
        b'{"high": 12',
        b"\xff\xfe",
        b"",
    ):
        r = clinic.http.put(url, content=raw, headers=headers)
        assert r.status_code == 422, (raw, r.text)
    r = clinic.http.put(url, content=b'{"high": 1' + b"0" * 2_000_000 + b"}", headers=headers)
    assert r.status_code in (413, 422)


def test_unknown_metrics_rules_and_patients(svc: RunningService, clinic: Clinic) -> None:
    pid = clinic.patient("STRAP-1")
    http = clinic.http
    assert http.put(f"/v1/patients/{pid}/thresholds/mood", json={"high": 1}).status_code == 404
    assert http.put(f"/v1/patients/{pid}/thresholds/..%2F..%2Fetc", json={"high": 1}).status_code in (
        404,
        422,
    )
    assert http.put(f"/v1/patients/{pid}/thresholds/HEART_RATE", json={"high": 1}).status_code == 422
    unknown = "00000000-0000-0000-0000-000000000000"
    assert http.put(f"/v1/patients/{unknown}/thresholds/heart_rate", json={"high": 1}).status_code == 404
    assert http.put(f"/v1/patients/{pid}/alert-rules/nonsense:rule", json={}).status_code == 404
    assert http.put(f"/v1/patients/{pid}/alert-rules/bad key!", json={}).status_code == 422
    for body, reason in (
        ({"params": {"delta": 0}}, "greater than 0"),
        ({"params": {"delta": 1.0, "hysteresis": 2}}, "hysteresis must be smaller"),
        ({"params": {"window_seconds": 10}}, "greater than or equal"),
        ({"params": {"direction": "sideways"}}, "rise"),
        ({"params": {"critical_delta": 0.5}}, "critical_delta must be larger"),
        ({"params": {"bogus": 1}}, "Extra inputs"),
        ({"params": {str(i): i for i in range(40)}}, "at most 32"),
        ({"enabled": "no"}, "valid boolean"),
        ({"params": []}, "valid dictionary"),
    ):
        r = http.put(f"/v1/patients/{pid}/alert-rules/rate:body_weight:24h", json=body)
        assert r.status_code == 422, (body, r.text)
        assert reason in str(r.json()["detail"]), (body, r.text)
    r = http.put(
        f"/v1/patients/{pid}/alert-rules/status:sensor_fault", json={"params": {"flags": ["<script>"]}}
    )
    assert r.status_code == 422 and "pattern" in r.text
    r = http.put(
        f"/v1/patients/{pid}/alert-rules/missing:spo2", json={"params": {"expected_every_seconds": 5}}
    )
    assert r.status_code == 422
    rules = http.get(f"/v1/patients/{pid}/alert-rules").json()["rules"]
    assert all(rule["source"] == "default" for rule in rules)
    assert {r["key"] for r in rules} >= {
        "threshold:spo2",
        "rate:body_weight:7d",
        "missing:body_weight",
        "battery:low",
    }


def test_roles_and_tenancy_for_configuration(svc: RunningService, clinic: Clinic) -> None:
    assert clinic.http.post("/v1/clinics", json={"id": "north", "name": "North"}).status_code == 201
    ours = clinic.patient("STRAP-1", "MRN-1")
    theirs = clinic.patient("STRAP-2", "MRN-2", clinic="north")
    with svc.client(svc.token("clinician", clinic="default")) as nurse:
        assert nurse.put(f"/v1/patients/{ours}/thresholds/heart_rate", json={"high": 100}).status_code == 200
        assert (
            nurse.put(f"/v1/patients/{theirs}/thresholds/heart_rate", json={"high": 100}).status_code == 404
        )
        assert nurse.get(f"/v1/patients/{theirs}/thresholds").status_code == 404
        assert nurse.get("/v1/clinics/north/alert-rules").status_code == 404
        assert nurse.get("/v1/clinics/default/alert-rules").status_code == 200
        r = nurse.put("/v1/clinics/default/alert-rules/threshold:spo2", json={"params": {"low": 90}})
        assert r.status_code == 403  # clinic-wide changes are for admins
    with svc.client(svc.token("device", device="STRAP-1")) as device:
        assert device.put(f"/v1/patients/{ours}/thresholds/heart_rate", json={"high": 1}).status_code == 403
        assert device.get(f"/v1/patients/{ours}/thresholds").status_code == 403
    assert clinic.http.get(f"/v1/patients/{ours}/thresholds/heart_rate").json()["high"] == 100


def test_prometheus_counts_alerts_by_kind_and_severity(svc: RunningService, clinic: Clinic) -> None:
    import time

    clinic.patient("CUFF-1")
    from tests.support.alerts import ago, reading

    clinic.post(
        "CUFF-1", reading("systolic_bp", 190, ago(minutes=2)), reading("blood_glucose", 65, ago(minutes=2))
    )
    deadline = time.monotonic() + 15
    while True:
        text = clinic.http.get("/metrics").text
        if 'rpm_alerts_opened_total{kind="threshold",severity="critical"} 1.0' in text:
            break
        assert time.monotonic() < deadline, text[-3000:]
        time.sleep(0.1)
    assert 'rpm_alerts_opened_total{kind="threshold",severity="warning"} 1.0' in text
    assert 'rpm_alert_events_total{kind="threshold",severity="critical",type="opened"} 1.0' in text
    assert "rpm_alert_evaluation_seconds_count" in text

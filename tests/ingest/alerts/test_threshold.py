"""Threshold rules: firing, the edge, debounce (consecutive and sustained), hysteresis, escalation,
clinic defaults and patient overrides."""

from __future__ import annotations

from tests.support.alerts import Clinic, ago, iso, reading


def test_fires_warning_then_critical_and_clears_with_hysteresis(clinic: Clinic) -> None:
    pid = clinic.patient("CUFF-1")
    # systolic default: warning above 160, critical above 180, hysteresis 5
    clinic.post("CUFF-1", reading("systolic_bp", 165, ago(minutes=50)))
    [alert] = clinic.active(pid)
    assert (alert["rule"], alert["kind"], alert["severity"], alert["status"]) == (
        "threshold:blood_pressure",  # a component alone still alerts, as the patient's blood pressure
        "threshold",
        "warning",
        "open",
    )
    assert alert["value"] == 165 and alert["metric"] == "blood_pressure" and alert["unit"] == "mm[Hg]"
    assert alert["message"] == "Systolic blood pressure 165 mmHg above high 160"  # display unit

    clinic.post("CUFF-1", reading("systolic_bp", 185, ago(minutes=40)))
    [alert] = clinic.active(pid)
    assert alert["severity"] == "critical" and alert["last_value"] == 185
    # inside the range but within the hysteresis margin: stays open
    clinic.post("CUFF-1", reading("systolic_bp", 158, ago(minutes=30)))
    assert len(clinic.active(pid)) == 1
    clinic.post("CUFF-1", reading("systolic_bp", 150, ago(minutes=20)))
    # critical and nobody acknowledged it: it latches (open, cleared) until someone looks
    [latched] = clinic.active(pid)
    assert latched["status"] == "open" and latched["cleared_at"] == iso(ago(minutes=20))
    assert clinic.http.post(f"/v1/alerts/{latched['id']}/acknowledge", json={}).status_code == 200
    assert clinic.active(pid) == []
    [resolved] = clinic.alerts(patient_id=pid)
    assert resolved["status"] == "resolved" and resolved["resolution"] == "auto"
    assert resolved["resolved_by"] == "system" and resolved["cleared_at"] is not None
    history = [h["type"] for h in clinic.detail(resolved["id"])["history"]]
    assert history == ["opened", "severity_raised", "cleared", "acknowledged", "resolved"]


def test_the_bound_itself_is_normal(clinic: Clinic) -> None:
    pid = clinic.patient("CUFF-1")
    clinic.post(
        "CUFF-1",
        reading("systolic_bp", 160, ago(minutes=30)),
        reading("diastolic_bp", 100, ago(minutes=30)),
        reading("blood_glucose", 70, ago(minutes=29)),
        reading("body_temperature", 38.0, ago(minutes=28)),
    )
    assert clinic.active(pid) == []
    clinic.post("CUFF-1", reading("systolic_bp", 160.5, ago(minutes=20)))
    assert [a["rule"] for a in clinic.active(pid)] == ["threshold:blood_pressure"]


def test_low_side_critical_fires_at_once_and_warning_waits_for_a_second_reading(clinic: Clinic) -> None:
    pid = clinic.patient("OXI-1")
    # spo2 default: warning below 92 after 2 consecutive readings; critical below 88 at once
    clinic.post("OXI-1", reading("spo2", 91, ago(minutes=50)))
    assert clinic.active(pid) == []
    clinic.post("OXI-1", reading("spo2", 90, ago(minutes=45)))
    [alert] = clinic.active(pid)
    assert alert["severity"] == "warning" and alert["details"]["direction"] == "low"
    assert alert["onset_at"] == (ago(minutes=50)).isoformat().replace("+00:00", "Z")
    assert "below low 92" in alert["message"]

    other = clinic.patient("OXI-2", "MRN-2")
    clinic.post("OXI-2", reading("spo2", 86, ago(minutes=40)))
    [critical] = clinic.active(other)
    assert critical["severity"] == "critical"
    assert critical["message"] == "Oxygen saturation 86 % below critical low 88"


def test_debounce_is_reset_by_a_normal_reading(clinic: Clinic) -> None:
    pid = clinic.patient("STRAP-1")
    # heart_rate default: warning above 110 after 2 consecutive readings
    clinic.post("STRAP-1", reading("heart_rate", 120, ago(minutes=10)))
    clinic.post("STRAP-1", reading("heart_rate", 80, ago(minutes=9)))
    clinic.post("STRAP-1", reading("heart_rate", 121, ago(minutes=8)))
    assert clinic.active(pid) == []
    clinic.post("STRAP-1", reading("heart_rate", 122, ago(minutes=7)))
    [alert] = clinic.active(pid)
    assert alert["details"]["readings_in_episode"] == 2 and alert["severity"] == "warning"


def test_sustained_duration_debounce(clinic: Clinic) -> None:
    pid = clinic.patient("OXI-1")
    t = clinic.set_threshold(pid, "spo2", consecutive=1, sustained_seconds=600)
    assert (t["sustained_seconds"], t["consecutive"], t["low"], t["source"]) == (600, 1, 92, "patient")
    clinic.post("OXI-1", reading("spo2", 90, ago(minutes=30)), reading("spo2", 90, ago(minutes=25)))
    assert clinic.active(pid) == []
    clinic.post("OXI-1", reading("spo2", 91, ago(minutes=20, seconds=1)))
    assert clinic.active(pid) == []  # 9 min 59 s out of range
    clinic.post("OXI-1", reading("spo2", 91, ago(minutes=20)))
    [alert] = clinic.active(pid)
    assert alert["details"]["readings_in_episode"] == 4


def test_patient_without_overrides_uses_clinic_defaults(clinic: Clinic) -> None:
    tuned = clinic.patient("STRAP-1", "MRN-1")
    plain = clinic.patient("STRAP-2", "MRN-2")
    clinic.set_threshold(tuned, "heart_rate", high=90, consecutive=1)
    for device in ("STRAP-1", "STRAP-2"):
        clinic.post(device, reading("heart_rate", 100, ago(minutes=5)))
    assert [a["rule"] for a in clinic.active(tuned)] == ["threshold:heart_rate"]
    assert clinic.active(plain) == []

    r = clinic.http.get(f"/v1/patients/{plain}/thresholds")
    assert r.status_code == 200
    hr = next(t for t in r.json()["thresholds"] if t["metric"] == "heart_rate")
    assert (hr["low"], hr["high"], hr["critical_low"], hr["critical_high"], hr["source"]) == (
        50,
        110,
        40,
        130,
        "default",
    )
    tuned_hr = clinic.http.get(f"/v1/patients/{tuned}/thresholds/heart_rate").json()
    assert (tuned_hr["high"], tuned_hr["low"], tuned_hr["source"]) == (90, 50, "patient")

    # A clinic-wide change reaches the patient without an override, not the one with it.
    r = clinic.http.put(
        "/v1/clinics/default/alert-rules/threshold:heart_rate",
        json={"params": {"high": 95, "consecutive": 1}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["source"] == "clinic"
    clinic.post("STRAP-2", reading("heart_rate", 100, ago(minutes=4)))
    assert [a["rule"] for a in clinic.active(plain)] == ["threshold:heart_rate"]
    assert clinic.http.get(f"/v1/patients/{plain}/thresholds/heart_rate").json()["source"] == "clinic"

    # Dropping the patient's override returns it to the clinic's value.
    r = clinic.http.delete(f"/v1/patients/{tuned}/thresholds/heart_rate")
    assert r.status_code == 200 and (r.json()["high"], r.json()["source"]) == (95, "clinic")


def test_null_removes_a_bound_for_one_patient_and_disabled_rules_do_not_fire(clinic: Clinic) -> None:
    pid = clinic.patient("CUFF-1")
    t = clinic.set_threshold(pid, "systolic_bp", high=None, critical_high=None)
    assert (t["high"], t["critical_high"], t["low"]) == (None, None, 90)
    clinic.post("CUFF-1", reading("systolic_bp", 200, ago(minutes=5)))
    assert clinic.active(pid) == []
    clinic.set_threshold(pid, "systolic_bp", enabled=False)
    clinic.post("CUFF-1", reading("systolic_bp", 60, ago(minutes=4)))
    assert clinic.active(pid) == []


def test_hysteresis_on_the_low_side(clinic: Clinic) -> None:
    pid = clinic.patient("OXI-1")
    clinic.post("OXI-1", reading("spo2", 90, ago(minutes=10)), reading("spo2", 90, ago(minutes=9)))
    assert len(clinic.active(pid)) == 1
    clinic.post("OXI-1", reading("spo2", 92.5, ago(minutes=8)))  # back above 92, inside the 1 % margin
    assert len(clinic.active(pid)) == 1
    clinic.post("OXI-1", reading("spo2", 93, ago(minutes=7)))
    assert clinic.active(pid) == []


def test_severity_never_drops_while_open(clinic: Clinic) -> None:
    pid = clinic.patient("CUFF-1")
    clinic.post("CUFF-1", reading("systolic_bp", 190, ago(minutes=10)))
    clinic.post("CUFF-1", reading("systolic_bp", 170, ago(minutes=9)))
    [alert] = clinic.active(pid)
    assert alert["severity"] == "critical" and alert["last_value"] == 170

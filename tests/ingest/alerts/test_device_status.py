"""Device status flags carried by readings, and low battery reported by a reading's flag."""

from __future__ import annotations

from tests.support.alerts import Clinic, ago, reading


def bp(at_minutes: float, *status: str, systolic: float = 120) -> list[dict[str, object]]:
    at = ago(minutes=at_minutes)
    extra = {"status": list(status)} if status else {}
    return [
        reading("systolic_bp", systolic, at, **extra),
        reading("diastolic_bp", 80, at, **extra),
        reading("heart_rate", 70, at, **extra),
    ]


def test_a_flagged_panel_opens_one_alert_and_a_clean_measurement_clears_it(clinic: Clinic) -> None:
    pid = clinic.patient("CUFF-1")
    clinic.post("CUFF-1", *bp(30, "cuff_too_loose", "body_movement"))
    [alert] = clinic.active(pid)
    assert (alert["rule"], alert["kind"], alert["device_id"], alert["severity"]) == (
        "status:cuff_too_loose",
        "device_status",
        "CUFF-1",
        "warning",
    )
    assert alert["details"]["flags"] == ["cuff_too_loose"]
    assert alert["message"] == "device CUFF-1 reports cuff_too_loose"
    clinic.post("CUFF-1", *bp(20, "cuff_too_loose"))
    assert len(clinic.active(pid)) == 1
    clinic.post("CUFF-1", *bp(10))
    assert clinic.active(pid) == []
    [resolved] = clinic.alerts(patient_id=pid)
    assert resolved["resolve_note"] == "device no longer reports it"


def test_irregular_pulse_waits_for_a_clinician(clinic: Clinic) -> None:
    pid = clinic.patient("CUFF-1")
    clinic.post("CUFF-1", *bp(30, "irregular_pulse"))
    clinic.post("CUFF-1", *bp(20))
    [alert] = clinic.active(pid)
    assert alert["rule"] == "status:irregular_pulse"


def test_flags_are_per_device_and_unknown_flags_are_ignored(clinic: Clinic) -> None:
    pid = clinic.patient("CUFF-1")
    clinic.device("OXI-1", pid)
    clinic.post("CUFF-1", *bp(30, "sensor_malfunction"))
    clinic.post("OXI-1", reading("spo2", 97, ago(minutes=29), status=["equipment_malfunction"]))
    clinic.post("OXI-1", reading("spo2", 97, ago(minutes=28), status=["x" * 64, "validated_data"]))
    alerts = clinic.active(pid)
    # the oximeter's fault cleared with its next measurement; the cuff's stays
    assert [(a["rule"], a["device_id"]) for a in alerts] == [("status:sensor_fault", "CUFF-1")]
    assert len(clinic.alerts(patient_id=pid)) == 2


def test_battery_flag_opens_low_battery_and_clears_without_it(clinic: Clinic) -> None:
    pid = clinic.patient("METER-1")
    clinic.post("METER-1", reading("blood_glucose", 110, ago(minutes=30), status=["device_battery_low"]))
    [alert] = clinic.active(pid)
    assert (alert["kind"], alert["rule"], alert["details"]["source"]) == (
        "low_battery",
        "battery:low",
        "flag",
    )
    clinic.post("METER-1", reading("blood_glucose", 112, ago(minutes=20)))
    assert clinic.active(pid) == []


def test_status_and_threshold_alerts_live_side_by_side(clinic: Clinic) -> None:
    pid = clinic.patient("CUFF-1")
    clinic.post("CUFF-1", *bp(10, "irregular_pulse", systolic=190))
    rules = sorted(a["rule"] for a in clinic.active(pid))
    assert rules == ["status:irregular_pulse", "threshold:blood_pressure"]


def test_battery_level_carried_by_readings_with_hysteresis(clinic: Clinic) -> None:
    pid = clinic.patient("OXI-1")

    def spo2(minutes: float, battery: int) -> dict[str, object]:
        return reading("spo2", 97, ago(minutes=minutes), battery_level=battery)

    clinic.post("OXI-1", spo2(40, 45))
    assert clinic.active(pid) == []
    clinic.post("OXI-1", spo2(30, 15))
    [alert] = clinic.active(pid)
    assert (alert["kind"], alert["device_id"], alert["value"], alert["details"]["source"]) == (
        "low_battery",
        "OXI-1",
        15,
        "level",
    )
    assert alert["message"] == "device OXI-1 battery at 15 %"
    clinic.post("OXI-1", spo2(20, 25))  # above 20 but below 20 + 10: still low
    assert len(clinic.active(pid)) == 1
    clinic.post("OXI-1", spo2(35, 95))  # late: measured before the alert's newest reading
    assert len(clinic.active(pid)) == 1
    clinic.post("OXI-1", spo2(10, 30))
    assert clinic.active(pid) == []
    [resolved] = clinic.alerts(patient_id=pid)
    assert resolved["resolve_note"] == "battery recharged"

"""Windowed rate of change: heart-failure weight gain against the patient's own readings."""

from __future__ import annotations

from tests.support.alerts import Clinic, ago, reading


def test_gain_of_1_kg_within_a_day_fires_and_0_99_does_not(clinic: Clinic) -> None:
    gain = clinic.patient("SCALE-1", "MRN-1")
    small = clinic.patient("SCALE-2", "MRN-2")
    for device in ("SCALE-1", "SCALE-2"):
        clinic.post(device, reading("body_weight", 80.0, ago(hours=25)))  # yesterday, a bit later
    clinic.post("SCALE-1", reading("body_weight", 81.0, ago(minutes=30)))
    clinic.post("SCALE-2", reading("body_weight", 80.99, ago(minutes=30)))
    assert clinic.active(small) == []
    [alert] = clinic.active(gain)
    assert (alert["rule"], alert["kind"], alert["severity"]) == (
        "rate:body_weight:24h",
        "rate_of_change",
        "warning",
    )
    assert alert["details"]["baseline_value"] == 80.0
    assert abs(alert["details"]["change"] - 1.0) < 1e-6
    assert alert["message"] == "Weight rose 1.0 kg within 24 h"  # display units (kg, one decimal)


def test_gain_in_pounds_is_judged_in_kilograms(clinic: Clinic) -> None:
    pid = clinic.patient("SCALE-1")
    clinic.post("SCALE-1", reading("body_weight", 176.37, ago(hours=20), unit="[lb_av]"))  # 80.0 kg
    clinic.post("SCALE-1", reading("body_weight", 180.78, ago(hours=1), unit="[lb_av]"))  # 82.0 kg
    [alert] = clinic.active(pid)
    assert alert["rule"] == "rate:body_weight:24h" and alert["severity"] == "critical"


def test_baseline_outside_the_window_is_not_compared(clinic: Clinic) -> None:
    pid = clinic.patient("SCALE-1")
    clinic.post("SCALE-1", reading("body_weight", 80.0, ago(hours=31)))  # beyond 24 h + 6 h grace
    clinic.post("SCALE-1", reading("body_weight", 81.5, ago(minutes=10)))
    assert clinic.active(pid) == []


def test_weekly_gain_of_2_3_kg(clinic: Clinic) -> None:
    pid = clinic.patient("SCALE-1")
    clinic.post(
        "SCALE-1",
        reading("body_weight", 80.0, ago(days=6)),
        reading("body_weight", 80.8, ago(days=4)),
        reading("body_weight", 81.6, ago(days=2)),
    )
    assert clinic.active(pid) == []
    clinic.post("SCALE-1", reading("body_weight", 82.2, ago(hours=1)))
    assert clinic.active(pid) == []  # 2.2 kg in the week
    clinic.post("SCALE-1", reading("body_weight", 82.3, ago(minutes=30)))
    [alert] = clinic.active(pid)
    assert alert["rule"] == "rate:body_weight:7d" and alert["severity"] == "warning"
    assert alert["details"]["baseline_at"].startswith(ago(days=6).date().isoformat())


def test_rate_alert_clears_when_the_gain_is_gone(clinic: Clinic) -> None:
    pid = clinic.patient("SCALE-1")
    clinic.post("SCALE-1", reading("body_weight", 80.0, ago(hours=20)))
    clinic.post("SCALE-1", reading("body_weight", 81.2, ago(hours=10)))
    assert len(clinic.active(pid, "rate:body_weight:24h")) == 1
    clinic.post("SCALE-1", reading("body_weight", 80.8, ago(hours=5)))  # +0.8: in the hysteresis band
    assert len(clinic.active(pid, "rate:body_weight:24h")) == 1
    clinic.post("SCALE-1", reading("body_weight", 80.6, ago(hours=1)))  # +0.6 < 1.0 - 0.3
    assert clinic.active(pid) == []


def test_rules_can_be_disabled_per_patient(clinic: Clinic) -> None:
    pid = clinic.patient("SCALE-1")
    rule = clinic.set_rule(pid, "rate:body_weight:24h", enabled=False)
    assert (rule["enabled"], rule["source"]) == (False, "patient")
    clinic.post(
        "SCALE-1", reading("body_weight", 80.0, ago(hours=20)), reading("body_weight", 82.1, ago(hours=1))
    )
    assert clinic.active(pid) == []  # +2.1 kg: the weekly rule (2.3 kg) stays quiet too

"""Blood pressure is one value: one alert per measurement (systolic and diastolic of a device at
one time), with the worse severity of the two, while the rules stay per component."""

from __future__ import annotations

from typing import Any

import pytest

from ingest.alerts.kinds.threshold import ThresholdParams, bp_message
from tests.support.alerts import Clinic, ago, iso, reading

SYSTOLIC = ThresholdParams(low=90, high=160, critical_low=80, critical_high=180, hysteresis=5)
DIASTOLIC = ThresholdParams(low=50, high=100, critical_low=40, critical_high=120, hysteresis=5)


def bp(minutes: float, systolic: float, diastolic: float) -> list[dict[str, Any]]:
    at = ago(minutes=minutes)
    return [reading("systolic_bp", systolic, at), reading("diastolic_bp", diastolic, at)]


@pytest.mark.parametrize(
    ("systolic", "diastolic", "expected"),
    [
        (179, 106, "Blood pressure 179/106 mmHg above 160/100"),
        (85, 45, "Blood pressure 85/45 mmHg below 90/50"),
        (190, 125, "Blood pressure 190/125 mmHg above critical 180/120"),
        (179, 76, "Blood pressure 179/76 mmHg: systolic above 160"),
        (120, 105, "Blood pressure 120/105 mmHg: diastolic above 100"),
        (185, 106, "Blood pressure 185/106 mmHg: systolic above critical 180, diastolic above 100"),
        (170, 45, "Blood pressure 170/45 mmHg: systolic above 160, diastolic below 50"),
        (120, 80, "Blood pressure 120/80 mmHg"),
        (160.5, 100.5, "Blood pressure 160.5/100.5 mmHg above 160/100"),  # never rounded to normal
    ],
)
def test_the_message_of_a_measurement(systolic: float, diastolic: float, expected: str) -> None:
    parts = {"systolic_bp": (SYSTOLIC, systolic), "diastolic_bp": (DIASTOLIC, diastolic)}
    assert bp_message(parts) == expected


def test_the_message_of_a_component_alone() -> None:
    assert bp_message({"systolic_bp": (SYSTOLIC, 179)}) == "Systolic blood pressure 179 mmHg above high 160"
    low = bp_message({"diastolic_bp": (DIASTOLIC, 38)})
    assert low == "Diastolic blood pressure 38 mmHg below critical low 40"


def test_one_measurement_above_both_limits_opens_one_alert(clinic: Clinic) -> None:
    pid = clinic.patient("CUFF-1")
    clinic.post("CUFF-1", *bp(10, 179, 106))
    [alert] = clinic.active(pid)
    assert (alert["rule"], alert["kind"], alert["metric"], alert["severity"]) == (
        "threshold:blood_pressure",
        "threshold",
        "blood_pressure",
        "warning",
    )
    assert alert["message"] == "Blood pressure 179/106 mmHg above 160/100"
    assert alert["value"] == 179 and alert["unit"] == "mm[Hg]" and alert["display_unit"] == "mmHg"
    assert alert["details"]["values"] == {"systolic_bp": 179, "diastolic_bp": 106}
    assert alert["details"]["components"] == ["diastolic_bp", "systolic_bp"]
    assert alert["onset_at"] == iso(ago(minutes=10)) and alert["device_id"] == "CUFF-1"
    assert [e["type"] for e in clinic.events()] == ["opened"]


def test_the_worse_component_decides_the_severity(clinic: Clinic) -> None:
    pid = clinic.patient("CUFF-1")
    clinic.post("CUFF-1", *bp(10, 150, 125))  # diastolic critical, systolic normal
    [alert] = clinic.active(pid)
    assert alert["severity"] == "critical"
    assert alert["message"] == "Blood pressure 150/125 mmHg: diastolic above critical 120"


def test_it_holds_while_either_component_is_out_and_clears_when_both_are_back(clinic: Clinic) -> None:
    pid = clinic.patient("CUFF-1")
    clinic.post("CUFF-1", *bp(40, 179, 106))
    [alert] = clinic.active(pid)
    clinic.post("CUFF-1", *bp(30, 140, 106))  # systolic back, diastolic still high
    assert [a["id"] for a in clinic.active(pid)] == [alert["id"]]
    clinic.post("CUFF-1", *bp(20, 140, 97))  # diastolic inside, but within its hysteresis (5)
    assert [a["id"] for a in clinic.active(pid)] == [alert["id"]]
    clinic.post("CUFF-1", *bp(10, 140, 90))
    assert clinic.active(pid) == []  # a warning: resolves by itself
    [done] = clinic.alerts(patient_id=pid)
    assert done["resolution"] == "auto" and done["cleared_at"] == iso(ago(minutes=10))
    assert [e["type"] for e in clinic.events()] == ["opened", "resolved"]


def test_a_higher_measurement_raises_the_one_alert(clinic: Clinic) -> None:
    pid = clinic.patient("CUFF-1")
    clinic.post("CUFF-1", *bp(20, 170, 95))
    clinic.post("CUFF-1", *bp(10, 185, 95))
    [alert] = clinic.active(pid)
    assert alert["severity"] == "critical" and alert["last_value"] == 185
    assert alert["message"] == "Blood pressure 185/95 mmHg: systolic above critical 180"
    assert [e["type"] for e in clinic.events()] == ["opened", "severity_raised"]


def test_a_critical_measurement_latches_until_acknowledged(clinic: Clinic) -> None:
    pid = clinic.patient("CUFF-1")
    clinic.post("CUFF-1", *bp(20, 190, 125))
    clinic.post("CUFF-1", *bp(10, 130, 80))
    [alert] = clinic.active(pid)
    assert alert["cleared_at"] == iso(ago(minutes=10)) and alert["status"] == "open"
    clinic.post("CUFF-1", *bp(5, 165, 80))  # back while it waits: the same alert
    [again] = clinic.active(pid)
    assert again["id"] == alert["id"] and again["cleared_at"] is None
    assert [e["type"] for e in clinic.events()] == ["opened", "cleared", "recurred"]


def test_a_component_measured_alone_still_alerts_and_joins_the_same_alert(clinic: Clinic) -> None:
    pid = clinic.patient("CUFF-1")
    clinic.post("CUFF-1", reading("systolic_bp", 179, ago(minutes=30)))
    [alert] = clinic.active(pid)
    assert alert["rule"] == "threshold:blood_pressure"
    assert alert["message"] == "Systolic blood pressure 179 mmHg above high 160"
    clinic.post("CUFF-1", *bp(20, 179, 106))
    assert [a["id"] for a in clinic.active(pid)] == [alert["id"]]  # one alert, not two
    clinic.post("CUFF-1", *bp(10, 120, 80))
    assert clinic.active(pid) == []


def test_a_component_alone_does_not_clear_what_the_other_holds(clinic: Clinic) -> None:
    pid = clinic.patient("CUFF-1")
    clinic.post("CUFF-1", *bp(30, 179, 106))
    clinic.post("CUFF-1", reading("systolic_bp", 120, ago(minutes=20)))  # diastolic not measured
    assert len(clinic.active(pid)) == 1
    clinic.post("CUFF-1", reading("diastolic_bp", 80, ago(minutes=15)))  # systolic not measured
    assert len(clinic.active(pid)) == 1
    clinic.post("CUFF-1", *bp(10, 120, 80))
    assert clinic.active(pid) == []


def test_a_component_out_of_range_later_holds_the_alert_too(clinic: Clinic) -> None:
    pid = clinic.patient("CUFF-1")
    clinic.post("CUFF-1", *bp(30, 179, 80))  # systolic opens it
    [alert] = clinic.active(pid)
    assert alert["details"]["components"] == ["systolic_bp"]
    clinic.post("CUFF-1", *bp(20, 179, 106))  # diastolic out of range too: it keeps the alert
    [kept] = clinic.active(pid)
    assert kept["id"] == alert["id"] and kept["details"]["components"] == ["diastolic_bp", "systolic_bp"]
    clinic.post("CUFF-1", reading("systolic_bp", 120, ago(minutes=10)))  # diastolic not measured
    [still] = clinic.active(pid)
    assert still["id"] == alert["id"] and still["cleared_at"] is None
    assert [e["type"] for e in clinic.events()] == ["opened"]
    clinic.post("CUFF-1", *bp(5, 120, 80))
    assert clinic.active(pid) == []


def test_a_component_alone_clears_an_alert_it_alone_opened(clinic: Clinic) -> None:
    pid = clinic.patient("CUFF-1")
    clinic.post("CUFF-1", reading("systolic_bp", 170, ago(minutes=20)))
    clinic.post("CUFF-1", reading("systolic_bp", 120, ago(minutes=10)))
    assert clinic.active(pid) == []


def test_the_rules_stay_per_component(clinic: Clinic) -> None:
    wide = clinic.patient("CUFF-1", "MRN-1")
    clinic.set_threshold(wide, "diastolic_bp", high=110)  # this patient's diastolic limit
    clinic.post("CUFF-1", *bp(10, 179, 106))
    [alert] = clinic.active(wide)
    assert alert["message"] == "Blood pressure 179/106 mmHg: systolic above 160"
    assert alert["details"]["components"] == ["systolic_bp"]

    no_systolic = clinic.patient("CUFF-2", "MRN-2")
    clinic.set_rule(no_systolic, "threshold:systolic_bp", enabled=False)
    clinic.post("CUFF-2", *bp(10, 200, 80))
    assert clinic.active(no_systolic) == []  # only the diastolic rule judges this patient
    clinic.post("CUFF-2", *bp(5, 200, 105))
    [only] = clinic.active(no_systolic)
    assert only["message"] == "Diastolic blood pressure 105 mmHg above high 100"


def test_measurements_of_one_batch_are_decided_in_time_order(clinic: Clinic) -> None:
    pid = clinic.patient("CUFF-1")
    clinic.post("CUFF-1", *bp(10, 120, 80), *bp(30, 179, 106), *bp(20, 150, 85))
    assert clinic.active(pid) == []
    [done] = clinic.alerts(patient_id=pid)
    assert done["onset_at"] == iso(ago(minutes=30)) and done["cleared_at"] == iso(ago(minutes=20))


def test_an_alert_of_a_component_opened_before_stays_its_own_until_it_clears(clinic: Clinic) -> None:
    """Alerts opened per component before blood pressure was one alert run their course."""
    pid = clinic.patient("CUFF-1")
    with clinic.svc.services.transaction() as conn:
        conn.execute(
            "INSERT INTO alerts (clinic_id, patient_id, rule_key, kind, metric, severity, value, unit,"
            " last_value, message, onset_at, latest_at)"
            " VALUES ('default', %s, 'threshold:systolic_bp', 'threshold', 'systolic_bp', 'warning',"
            " 170, 'mm[Hg]', 170, 'systolic_bp 170 mm[Hg] above high 160', %s, %s)",
            (pid, ago(minutes=40), ago(minutes=40)),
        )
    clinic.post("CUFF-1", *bp(30, 150, 80))
    assert clinic.active(pid) == []
    assert [a["rule"] for a in clinic.alerts(patient_id=pid)] == ["threshold:systolic_bp"]

"""Duplicates, re-deliveries, late and out-of-order readings."""

from __future__ import annotations

from tests.support.alerts import Clinic, ago, iso, reading


def test_duplicates_and_redeliveries_never_fire_twice(clinic: Clinic) -> None:
    pid = clinic.patient("CUFF-1")
    body = [reading("systolic_bp", 190, ago(minutes=10)), reading("diastolic_bp", 125, ago(minutes=10))]
    assert clinic.post("CUFF-1", *body)["accepted"] == 2
    assert clinic.post("CUFF-1", *body)["duplicates"] == 2
    assert len(clinic.active(pid)) == 1  # one blood-pressure measurement: one alert
    opened = [e for e in clinic.events() if e["type"] == "opened"]
    assert len(opened) == 1

    normal = [reading("systolic_bp", 120, ago(minutes=5)), reading("diastolic_bp", 80, ago(minutes=5))]
    clinic.post("CUFF-1", *normal)
    [latched] = clinic.active(pid)  # critical and unacknowledged: it stays, marked cleared
    assert latched["cleared_at"] == iso(ago(minutes=5))
    # The original abnormal reading delivered again after the episode ended: nothing happens.
    assert clinic.post("CUFF-1", *body)["duplicates"] == 2
    assert clinic.active(pid) == [latched]
    assert [e["type"] for e in clinic.events()].count("opened") == 1


def test_a_late_normal_reading_never_resolves_an_alert_held_by_a_newer_reading(clinic: Clinic) -> None:
    pid = clinic.patient("OXI-1")
    clinic.post("OXI-1", reading("spo2", 85, ago(minutes=10)))
    [alert] = clinic.active(pid)
    clinic.post("OXI-1", reading("spo2", 98, ago(minutes=20)))  # measured before, arrives after
    assert [(a["id"], a["cleared_at"]) for a in clinic.active(pid)] == [(alert["id"], None)]
    clinic.post("OXI-1", reading("spo2", 98, ago(minutes=5)))
    # critical and unacknowledged, so it latches: still there, cleared by the newer reading
    assert [(a["id"], a["cleared_at"]) for a in clinic.active(pid)] == [(alert["id"], iso(ago(minutes=5)))]


def test_a_late_abnormal_reading_opens_an_alert_for_the_time_it_describes(clinic: Clinic) -> None:
    pid = clinic.patient("OXI-1")
    clinic.post("OXI-1", reading("spo2", 97, ago(minutes=10)))
    clinic.post("OXI-1", reading("spo2", 84, ago(hours=3)))  # buffered on a gateway for hours
    [alert] = clinic.active(pid)
    assert alert["late"] is True and alert["details"]["late"] is True
    assert alert["onset_at"] == iso(ago(hours=3)) and alert["severity"] == "critical"
    # A newer normal reading than every one in its episode clears it (critical: it latches).
    clinic.post("OXI-1", reading("spo2", 97, ago(minutes=2)))
    assert [a["cleared_at"] for a in clinic.active(pid)] == [iso(ago(minutes=2))]


def test_a_late_reading_inside_an_episode_already_reported_opens_nothing(clinic: Clinic) -> None:
    pid = clinic.patient("CUFF-1")
    clinic.post("CUFF-1", reading("systolic_bp", 170, ago(minutes=30)))
    clinic.post("CUFF-1", reading("systolic_bp", 120, ago(minutes=10)))
    assert clinic.active(pid) == []
    clinic.post("CUFF-1", reading("systolic_bp", 175, ago(minutes=20)))  # late, inside that episode
    assert clinic.active(pid) == []
    assert len(clinic.alerts(patient_id=pid)) == 1


def test_late_reading_completes_a_debounce_run_with_newer_readings(clinic: Clinic) -> None:
    pid = clinic.patient("STRAP-1")
    # heart_rate needs 2 consecutive readings above 110
    clinic.post("STRAP-1", reading("heart_rate", 120, ago(minutes=10)))
    clinic.post("STRAP-1", reading("heart_rate", 80, ago(minutes=5)))
    assert clinic.active(pid) == []
    clinic.post("STRAP-1", reading("heart_rate", 125, ago(minutes=11)))  # late: makes the run 2 long
    [alert] = clinic.active(pid)
    assert alert["onset_at"] == iso(ago(minutes=11)) and alert["late"] is True


def test_a_batch_out_of_order_gives_the_same_result_as_in_order(clinic: Clinic) -> None:
    ordered = clinic.patient("STRAP-1", "MRN-1")
    shuffled = clinic.patient("STRAP-2", "MRN-2")
    values = [(125, 9), (126, 8), (80, 7), (70, 6), (121, 5), (122, 4)]
    clinic.post("STRAP-1", *[reading("heart_rate", v, ago(minutes=m)) for v, m in values])
    clinic.post("STRAP-2", *[reading("heart_rate", v, ago(minutes=m)) for v, m in reversed(values)])
    for pid in (ordered, shuffled):
        alerts = sorted(clinic.alerts(patient_id=pid), key=lambda a: a["onset_at"])
        assert [(a["status"], a["onset_at"]) for a in alerts] == [
            ("resolved", iso(ago(minutes=9))),
            ("open", iso(ago(minutes=5))),
        ]

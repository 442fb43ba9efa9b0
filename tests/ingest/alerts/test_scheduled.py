"""Time-driven alerts, run by the scheduler: missing data, low battery level, and the escalation
of unacknowledged critical alerts. Ticks are driven with an explicit time."""

from __future__ import annotations

from datetime import timedelta

from tests.support.alerts import NOW, Clinic, ago, iso, reading


def test_missing_daily_weight_opens_once_and_data_resolves_it(clinic: Clinic) -> None:
    pid = clinic.patient("SCALE-1")
    clinic.post("SCALE-1", reading("body_weight", 80.0, ago(hours=30)))
    tick = clinic.ctx.scheduler.tick
    assert tick(NOW).missing_opened == 0  # 30 h: within 24 h cadence + 12 h grace
    result = tick(NOW + timedelta(hours=7))
    assert result.ran and result.missing_opened == 1
    [alert] = clinic.active(pid)
    assert (alert["rule"], alert["kind"], alert["severity"], alert["metric"]) == (
        "missing:body_weight",
        "missing_data",
        "warning",
        "body_weight",
    )
    assert alert["message"] == "No weight reading for 37 h (expected every 24 h)"
    assert tick(NOW + timedelta(hours=8)).missing_opened == 0  # one alert per silence

    clinic.post("SCALE-1", reading("body_weight", 80.1, ago(minutes=1)))
    assert clinic.active(pid) == []
    [resolved] = clinic.alerts(patient_id=pid)
    assert resolved["resolution"] == "auto" and resolved["resolve_note"] == "data arrived"


def test_a_silence_resolved_by_hand_is_not_reported_again(clinic: Clinic) -> None:
    pid = clinic.patient("SCALE-1")
    clinic.post("SCALE-1", reading("body_weight", 80.0, ago(days=3)))
    clinic.ctx.scheduler.tick(NOW)
    [alert] = clinic.active(pid)
    r = clinic.http.post(f"/v1/alerts/{alert['id']}/resolve", json={"note": "travelling, called"})
    assert r.status_code == 200
    assert clinic.ctx.scheduler.tick(NOW + timedelta(days=1)).missing_opened == 0
    # ... but the next silence is.
    clinic.post("SCALE-1", reading("body_weight", 80.2, ago(days=2)))
    assert clinic.ctx.scheduler.tick(NOW).missing_opened == 1


def test_a_latched_silence_recurs_when_the_patient_goes_silent_again(clinic: Clinic) -> None:
    pid = clinic.patient("SCALE-1")
    clinic.set_rule(pid, "missing:body_weight", params={"latch": True})
    clinic.post("SCALE-1", reading("body_weight", 80.0, ago(days=3)))
    tick = clinic.ctx.scheduler.tick
    assert tick(NOW).missing_opened == 1
    [alert] = clinic.active(pid)
    clinic.post("SCALE-1", reading("body_weight", 80.1, ago(hours=1)))  # data arrived: latched
    [cleared] = clinic.active(pid)
    assert cleared["id"] == alert["id"] and cleared["cleared_at"] == iso(ago(hours=1))
    result = tick(NOW + timedelta(hours=30))  # 31 h silent: within 24 h + 12 h grace
    assert (result.missing_opened, result.missing_recurred) == (0, 0)
    result = tick(NOW + timedelta(hours=40))  # silent again, still awaiting review
    assert (result.missing_opened, result.missing_recurred) == (0, 1)
    [again] = clinic.active(pid)
    assert again["id"] == alert["id"] and again["cleared_at"] is None
    assert again["latest_at"] == iso(ago(hours=1))
    assert tick(NOW + timedelta(hours=41)).missing_recurred == 0  # once per silence
    assert [e["type"] for e in clinic.events()] == ["opened", "cleared", "recurred"]
    clinic.post("SCALE-1", reading("body_weight", 80.2, ago(minutes=30)))  # a newer reading clears it again
    assert clinic.active(pid)[0]["cleared_at"] == iso(ago(minutes=30))


def test_no_missing_data_alert_without_a_device_or_for_metrics_that_are_off(clinic: Clinic) -> None:
    pid = clinic.patient("SCALE-1")
    clinic.post(
        "SCALE-1",
        reading("body_weight", 80.0, ago(days=3)),
        reading("heart_rate", 70, ago(days=3)),  # missing:heart_rate is off by default
    )
    r = clinic.http.put(
        "/v1/devices/SCALE-1/assignment", json={"patient_id": None, "since": ago(days=1).isoformat()}
    )
    assert r.status_code == 200, r.text
    assert clinic.ctx.scheduler.tick(NOW).missing_opened == 0  # no device assigned any more
    clinic.device("SCALE-2", pid)
    result = clinic.ctx.scheduler.tick(NOW)
    assert result.missing_opened == 1
    assert [a["rule"] for a in clinic.active(pid)] == ["missing:body_weight"]


def test_per_patient_cadence_starts_its_clock_when_set(clinic: Clinic) -> None:
    pid = clinic.patient("STRAP-1")
    rule = clinic.set_rule(
        pid, "missing:heart_rate", enabled=True, params={"expected_every_seconds": 3600, "grace_seconds": 600}
    )
    assert rule["params"]["expected_every_seconds"] == 3600 and rule["enabled"] is True
    tick = clinic.ctx.scheduler.tick
    assert tick(NOW + timedelta(minutes=30)).missing_opened == 0
    assert tick(NOW + timedelta(minutes=75)).missing_opened == 1  # never measured since it was set
    [alert] = clinic.active(pid)
    assert alert["rule"] == "missing:heart_rate" and alert["details"]["last_measured_at"] is None


def test_low_battery_level_with_hysteresis(clinic: Clinic) -> None:
    pid = clinic.patient("CUFF-1")

    def battery(level: int) -> None:
        with clinic.svc.services.transaction() as conn:
            conn.execute("UPDATE devices SET battery_level = %s WHERE id = 'CUFF-1'", (level,))

    battery(25)
    assert clinic.ctx.scheduler.tick(NOW).battery_opened == 0
    battery(19)
    assert clinic.ctx.scheduler.tick(NOW).battery_opened == 1
    [alert] = clinic.active(pid)
    assert (alert["kind"], alert["device_id"], alert["value"], alert["details"]["source"]) == (
        "low_battery",
        "CUFF-1",
        19,
        "level",
    )
    battery(25)  # above 20 but not 20 + 10
    result = clinic.ctx.scheduler.tick(NOW)
    assert (result.battery_opened, result.battery_resolved) == (0, 0)
    battery(30)
    assert clinic.ctx.scheduler.tick(NOW).battery_resolved == 1
    assert clinic.active(pid) == []


def test_battery_resolved_counts_only_resolved_alerts_and_the_latch_holds(clinic: Clinic) -> None:
    pid = clinic.patient("CUFF-1")

    def battery(level: int) -> None:
        with clinic.svc.services.transaction() as conn:
            conn.execute("UPDATE devices SET battery_level = %s WHERE id = 'CUFF-1'", (level,))

    clinic.set_rule(pid, "battery:low", params={"latch": True})
    tick = clinic.ctx.scheduler.tick
    battery(10)
    assert tick(NOW).battery_opened == 1
    battery(50)
    assert tick(NOW).battery_resolved == 0  # latched: only marked cleared
    [alert] = clinic.active(pid)
    assert alert["cleared_at"] is not None
    assert tick(NOW).battery_resolved == 0  # nor counted again on the next tick
    r = clinic.http.post(f"/v1/alerts/{alert['id']}/resolve", json={})
    assert r.status_code == 200, r.text

    # A device taken away clears its alert by the rule's latch too: here a critical that does not latch.
    clinic.set_rule(pid, "battery:low", params={"latch": False, "severity": "critical"})
    battery(10)
    assert tick(NOW).battery_opened == 1
    assert clinic.active(pid)[0]["severity"] == "critical"
    r = clinic.http.put(
        "/v1/devices/CUFF-1/assignment", json={"patient_id": None, "since": ago(days=1).isoformat()}
    )
    assert r.status_code == 200, r.text
    assert tick(NOW).battery_resolved == 1
    assert clinic.active(pid) == []


def test_unacknowledged_critical_alert_escalates(clinic: Clinic) -> None:
    pid = clinic.patient("OXI-1", "MRN-1")
    acked = clinic.patient("OXI-2", "MRN-2")
    clinic.post("OXI-1", reading("spo2", 84, ago(minutes=1)))
    clinic.post("OXI-2", reading("spo2", 84, ago(minutes=1)))
    [other] = clinic.active(acked)
    assert clinic.http.post(f"/v1/alerts/{other['id']}/acknowledge", json={}).status_code == 200
    tick = clinic.ctx.scheduler.tick
    assert tick(NOW + timedelta(minutes=5)).escalated == 0
    assert tick(NOW + timedelta(minutes=20)).escalated == 1
    [alert] = clinic.active(pid)
    assert alert["escalation_level"] == 1 and alert["escalated_at"] is not None
    assert tick(NOW + timedelta(minutes=21)).escalated == 0
    assert tick(NOW + timedelta(minutes=40)).escalated == 1
    history = [h["type"] for h in clinic.detail(alert["id"])["history"]]
    assert history == ["opened", "escalated", "escalated"]
    assert clinic.active(acked)[0]["escalation_level"] == 0


def test_warnings_do_not_escalate(clinic: Clinic) -> None:
    pid = clinic.patient("CUFF-1")
    clinic.post("CUFF-1", reading("systolic_bp", 170, ago(minutes=1)))
    assert clinic.ctx.scheduler.tick(NOW + timedelta(hours=3)).escalated == 0
    assert clinic.active(pid)[0]["escalation_level"] == 0

"""Latching: a critical alert whose condition clears before anyone acknowledged it stays open,
marked cleared, keeps escalating, and resolves once acknowledged (or resolved by hand); warnings
resolve by themselves; the rule's ``latch`` decides either way."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from ipaddress import ip_network
from typing import Any

from ingest.alerts.component import alerts_component
from ingest.settings import Settings
from tests.ingest.alerts.sse import SSEClient
from tests.support.alerts import NOW, Clinic, ago, alert_settings, iso, reading
from tests.support.service import running_service
from tests.support.webhooks import Receiver


def _ack(clinic: Clinic, alert_id: str, note: str | None = None) -> dict[str, Any]:
    r = clinic.http.post(f"/v1/alerts/{alert_id}/acknowledge", json={"note": note} if note else {})
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


def _history(clinic: Clinic, alert_id: str) -> list[tuple[str, str | None]]:
    return [(h["type"], h["actor"]) for h in clinic.detail(alert_id)["history"]]


def test_a_critical_alert_that_clears_unacknowledged_stays_open_marked_cleared(clinic: Clinic) -> None:
    pid = clinic.patient("OXI-1")
    clinic.post("OXI-1", reading("spo2", 85, ago(minutes=3)))  # critical below 88: at once
    [alert] = clinic.active(pid)
    assert alert["severity"] == "critical" and alert["cleared_at"] is None
    clinic.post("OXI-1", reading("spo2", 97, ago(minutes=2)))  # back to normal
    [still] = clinic.active(pid)
    assert still["id"] == alert["id"] and still["status"] == "open"
    assert still["cleared_at"] == iso(ago(minutes=2)) and still["last_value"] == 97
    assert still["resolved_at"] is None
    clinic.post("OXI-1", reading("spo2", 98, ago(minutes=1)))  # more normal readings change nothing
    [same] = clinic.active(pid)
    assert same["cleared_at"] == iso(ago(minutes=2))
    assert _history(clinic, alert["id"]) == [("opened", None), ("cleared", "system")]
    # Acknowledging it resolves it: it was only waiting for someone to see it.
    done = _ack(clinic, alert["id"], "saw it, patient fine")
    assert done["status"] == "resolved" and done["resolution"] == "auto" and done["resolved_by"] == "system"
    assert done["acknowledged_by"] == "admin-1" and done["acknowledge_note"] == "saw it, patient fine"
    assert done["cleared_at"] == iso(ago(minutes=2))
    assert clinic.active(pid) == []
    assert [t for t, _ in _history(clinic, alert["id"])] == ["opened", "cleared", "acknowledged", "resolved"]
    # Acting on it again is refused like any resolved alert.
    assert clinic.http.post(f"/v1/alerts/{alert['id']}/acknowledge", json={}).status_code == 409


def test_acknowledged_then_cleared_resolves_by_itself(clinic: Clinic) -> None:
    pid = clinic.patient("OXI-1")
    clinic.post("OXI-1", reading("spo2", 85, ago(minutes=3)))
    [alert] = clinic.active(pid)
    _ack(clinic, alert["id"])
    clinic.post("OXI-1", reading("spo2", 97, ago(minutes=2)))
    assert clinic.active(pid) == []
    [done] = clinic.alerts(patient_id=pid)
    assert done["status"] == "resolved" and done["resolution"] == "auto" and done["resolved_by"] == "system"
    assert done["resolve_note"] == "condition cleared after acknowledgement"
    assert done["cleared_at"] == iso(ago(minutes=2))


def test_a_warning_still_resolves_by_itself(clinic: Clinic) -> None:
    pid = clinic.patient("THERMO-1")
    clinic.post("THERMO-1", reading("body_temperature", 38.5, ago(minutes=3)))  # warning above 38.0
    [alert] = clinic.active(pid)
    assert alert["severity"] == "warning"
    clinic.post("THERMO-1", reading("body_temperature", 37.0, ago(minutes=2)))
    assert clinic.active(pid) == []
    [done] = clinic.alerts(patient_id=pid)
    assert done["resolution"] == "auto" and done["resolve_note"] == "condition cleared"


def test_a_warning_raised_to_critical_latches(clinic: Clinic) -> None:
    pid = clinic.patient("THERMO-1")
    clinic.post("THERMO-1", reading("body_temperature", 38.5, ago(minutes=3)))
    clinic.post("THERMO-1", reading("body_temperature", 40.0, ago(minutes=2)))  # critical above 39.5
    clinic.post("THERMO-1", reading("body_temperature", 37.0, ago(minutes=1)))
    [alert] = clinic.active(pid)
    assert alert["severity"] == "critical" and alert["cleared_at"] == iso(ago(minutes=1))


def test_the_condition_back_while_cleared_is_the_same_alert(clinic: Clinic) -> None:
    pid = clinic.patient("OXI-1")
    clinic.post("OXI-1", reading("spo2", 85, ago(minutes=4)))
    clinic.post("OXI-1", reading("spo2", 97, ago(minutes=3)))
    [cleared] = clinic.active(pid)
    assert cleared["cleared_at"] is not None
    clinic.post("OXI-1", reading("spo2", 84, ago(minutes=2)))  # back below the critical bound
    [back] = clinic.active(pid)
    assert back["id"] == cleared["id"] and back["cleared_at"] is None
    assert back["last_value"] == 84 and back["latest_at"] == iso(ago(minutes=2))
    assert len(clinic.alerts(patient_id=pid)) == 1  # one alert, not two
    clinic.post("OXI-1", reading("spo2", 96, ago(minutes=1)))
    [again] = clinic.active(pid)
    assert again["id"] == cleared["id"] and again["cleared_at"] == iso(ago(minutes=1))
    types = [t for t, _ in _history(clinic, cleared["id"])]
    assert types == ["opened", "cleared", "recurred", "cleared"]


def test_a_late_reading_from_before_the_clear_does_not_bring_it_back(clinic: Clinic) -> None:
    pid = clinic.patient("OXI-1")
    clinic.post("OXI-1", reading("spo2", 85, ago(minutes=10)))
    clinic.post("OXI-1", reading("spo2", 97, ago(minutes=5)))
    clinic.post("OXI-1", reading("spo2", 86, ago(minutes=8)))  # measured between: part of the episode
    [alert] = clinic.active(pid)
    assert alert["cleared_at"] == iso(ago(minutes=5))
    assert alert["latest_at"] == iso(ago(minutes=8))


def test_resolving_by_hand_while_cleared(clinic: Clinic) -> None:
    pid = clinic.patient("OXI-1")
    clinic.post("OXI-1", reading("spo2", 85, ago(minutes=3)))
    clinic.post("OXI-1", reading("spo2", 97, ago(minutes=2)))
    [alert] = clinic.active(pid)
    r = clinic.http.post(f"/v1/alerts/{alert['id']}/resolve", json={"note": "reviewed"})
    assert r.status_code == 200, r.text
    assert r.json()["resolution"] == "manual" and r.json()["cleared_at"] is not None
    clinic.post("OXI-1", reading("spo2", 84, ago(minutes=1)))  # a new episode: a new alert
    [new] = clinic.active(pid)
    assert new["id"] != alert["id"] and new["cleared_at"] is None


def test_latch_is_a_rule_setting(clinic: Clinic) -> None:
    quiet = clinic.patient("OXI-1", "MRN-1")
    careful = clinic.patient("THERMO-1", "MRN-2")
    clinic.set_rule(quiet, "threshold:spo2", params={"latch": False})
    clinic.set_rule(careful, "threshold:body_temperature", params={"latch": True})
    clinic.post("OXI-1", reading("spo2", 85, ago(minutes=3)), reading("spo2", 97, ago(minutes=2)))
    assert clinic.active(quiet) == []  # critical, but this rule does not latch
    clinic.post(
        "THERMO-1",
        reading("body_temperature", 38.5, ago(minutes=3)),
        reading("body_temperature", 37.0, ago(minutes=2)),
    )
    [warning] = clinic.active(careful)  # a warning, but this rule latches
    assert warning["severity"] == "warning" and warning["cleared_at"] == iso(ago(minutes=2))
    r = clinic.http.put(f"/v1/patients/{quiet}/alert-rules/threshold:spo2", json={"params": {"latch": "no"}})
    assert r.status_code == 422
    kinds = clinic.http.get("/v1/alert-rule-kinds").json()["kinds"]
    threshold = next(k for k in kinds if k["name"] == "threshold")
    assert "latch" in threshold["parameters"]["properties"]


def test_a_blood_pressure_alert_latches_if_any_component_out_of_range_would(clinic: Clinic) -> None:
    pid = clinic.patient("CUFF-1")
    clinic.set_rule(pid, "threshold:systolic_bp", params={"latch": False})  # diastolic: unset
    at = ago(minutes=3)
    clinic.post("CUFF-1", reading("systolic_bp", 170, at), reading("diastolic_bp", 125, at))
    [alert] = clinic.active(pid)
    assert alert["severity"] == "critical"  # held by the diastolic, whose default latches
    at = ago(minutes=2)
    clinic.post("CUFF-1", reading("systolic_bp", 120, at), reading("diastolic_bp", 80, at))
    [latched] = clinic.active(pid)
    assert latched["id"] == alert["id"] and latched["cleared_at"] == iso(at)

    alone = clinic.patient("CUFF-2", "MRN-2")
    clinic.set_rule(alone, "threshold:systolic_bp", params={"latch": False})
    at = ago(minutes=3)
    clinic.post("CUFF-2", reading("systolic_bp", 190, at), reading("diastolic_bp", 80, at))
    assert clinic.active(alone)[0]["severity"] == "critical"  # the systolic alone: it does not latch
    at = ago(minutes=2)
    clinic.post("CUFF-2", reading("systolic_bp", 120, at), reading("diastolic_bp", 80, at))
    assert clinic.active(alone) == []


def test_latch_through_the_thresholds_api(clinic: Clinic) -> None:
    pid = clinic.patient("OXI-1")
    assert clinic.set_threshold(pid, "spo2", latch=False)["latch"] is False
    clinic.post("OXI-1", reading("spo2", 85, ago(minutes=3)), reading("spo2", 97, ago(minutes=2)))
    assert clinic.active(pid) == []
    assert clinic.set_threshold(pid, "spo2", latch=None)["latch"] is None  # back to: critical latches
    clinic.post("OXI-1", reading("spo2", 85, ago(minutes=1)), reading("spo2", 97, ago(seconds=30)))
    [alert] = clinic.active(pid)
    assert alert["cleared_at"] == iso(ago(seconds=30))


def test_a_cleared_alert_keeps_escalating(clinic: Clinic) -> None:
    pid = clinic.patient("OXI-1")
    clinic.post("OXI-1", reading("spo2", 84, ago(minutes=2)))
    clinic.post("OXI-1", reading("spo2", 97, ago(minutes=1)))
    tick = clinic.ctx.scheduler.tick
    assert tick(NOW + timedelta(minutes=20)).escalated == 1
    [alert] = clinic.active(pid)
    assert alert["escalation_level"] == 1 and alert["cleared_at"] is not None
    done = _ack(clinic, alert["id"])
    assert done["status"] == "resolved"
    assert tick(NOW + timedelta(minutes=40)).escalated == 0


def test_the_latch_survives_a_restart(settings: Settings) -> None:
    s = alert_settings(settings)
    with running_service(s, factories=[alerts_component]) as svc, svc.client(svc.token("admin")) as http:
        clinic = Clinic(svc, http)
        pid = clinic.patient("OXI-1")
        clinic.post("OXI-1", reading("spo2", 84, ago(minutes=3)))
        clinic.post("OXI-1", reading("spo2", 97, ago(minutes=2)))
        [before] = clinic.active(pid)
    with running_service(s, factories=[alerts_component]) as svc, svc.client(svc.token("admin")) as http:
        clinic = Clinic(svc, http)
        [after] = clinic.active(pid)
        assert after["id"] == before["id"] and after["cleared_at"] == before["cleared_at"]
        clinic.post("OXI-1", reading("spo2", 98, ago(minutes=1)))  # still cleared: nothing new
        assert [t for t, _ in _history(clinic, after["id"])] == ["opened", "cleared"]
        clinic.post("OXI-1", reading("spo2", 84, ago(seconds=30)))
        [back] = clinic.active(pid)
        assert back["id"] == before["id"] and back["cleared_at"] is None


def test_concurrent_clear_and_acknowledge_end_resolved_once(clinic: Clinic) -> None:
    """The clearing reading and a clinician's acknowledgement race: whichever comes second, the
    alert ends resolved, with one 'resolved' event."""
    for n in range(4):
        device = f"OXI-{n}"
        pid = clinic.patient(device, f"MRN-{n}")
        clinic.post(device, reading("spo2", 84, ago(minutes=3)))
        [alert] = clinic.active(pid)
        errors: list[BaseException] = []

        def post_normal(device: str = device, errors: list[BaseException] = errors) -> None:
            try:
                clinic.post(device, reading("spo2", 97, ago(minutes=2)))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        worker = threading.Thread(target=post_normal)
        worker.start()
        r = clinic.http.post(f"/v1/alerts/{alert['id']}/acknowledge", json={})
        worker.join()
        assert not errors and r.status_code == 200, r.text
        assert clinic.active(pid) == []
        types = [t for t, _ in _history(clinic, alert["id"])]
        assert types.count("resolved") == 1 and types[-1] == "resolved"


def test_cleared_and_recurred_reach_the_stream_and_the_webhooks(settings: Settings) -> None:
    allowed = alert_settings(settings).model_copy(
        update={"webhook_allow_networks": (ip_network("127.0.0.1/32"),)}
    )
    hook = Receiver([])
    try:
        with (
            running_service(allowed, factories=[alerts_component]) as svc,
            svc.client(svc.token("admin")) as http,
        ):
            clinic = Clinic(svc, http)
            r = http.post("/v1/clinics/default/webhooks", json={"url": hook.url})  # default event types
            assert r.status_code == 201, r.text
            assert "cleared" in r.json()["event_types"]
            pid = clinic.patient("OXI-1")
            with SSEClient(svc.base_url, svc.token("clinician", clinic="default")) as stream:
                clinic.post("OXI-1", reading("spo2", 85, ago(minutes=3)))
                assert stream.next().data["type"] == "opened"
                clinic.post("OXI-1", reading("spo2", 97, ago(minutes=2)))
                cleared = stream.next().data
                assert (cleared["type"], cleared["actor"], cleared["alert"]["status"]) == (
                    "cleared",
                    "system",
                    "open",
                )
                assert cleared["alert"]["cleared_at"] == iso(ago(minutes=2))
                clinic.post("OXI-1", reading("spo2", 84, ago(minutes=1)))
                recurred = stream.next().data
                assert recurred["type"] == "recurred" and recurred["alert"]["cleared_at"] is None
            deadline = time.monotonic() + 20
            while len(hook.requests) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            events = [headers["x-rpm-event"] for headers, _ in hook.requests]
            assert events == ["opened", "cleared"]  # 'recurred' only when asked for
            payload = json.loads(hook.requests[1][1])
            assert payload["alert"]["patient_id"] == pid and payload["alert"]["cleared_at"] is not None
            assert payload["text"].startswith("Critical alert cleared: Oxygen saturation 85")
    finally:
        hook.close()

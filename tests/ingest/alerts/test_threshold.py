"""Threshold rules: firing, the edge, debounce (consecutive and sustained), hysteresis, escalation,
clinic defaults and patient overrides."""

from __future__ import annotations

from tests.ingest.alerts.conftest import Clinic, ago, reading


def test_fires_warning_then_critical_and_clears_with_hysteresis(clinic: Clinic) -> None:
    pid = clinic.patient("CUFF-1")
    # systolic default: warning above 160, critical above 180, hysteresis 5
    clinic.post("CUFF-1", reading("systolic_bp", 165, ago(minutes=50)))
    [alert] = clinic.active(pid)
    assert (alert["rule"], alert["kind"], alert["severity"], alert["status"]) == (
        "threshold:systolic_bp", "threshold", "warning", "open"
    )
    assert alert["value"] == 165 and alert["metric"] == "systolic_bp" and alert["unit"] == "mm[Hg]"
    assert "above high 160" in alert["message"]

    clinic.post("CUFF-1", reading("systolic_bp", 185, ago(minutes=40)))
    [alert] = clinic.active(pid)
    assert alert["severity"] == "critical" and alert["last_value"] == 185
    # inside the range but within the hysteresis margin: stays open
    clinic.post("CUFF-1", reading("systolic_bp", 158, ago(minutes=30)))
    assert len(clinic.active(pid)) == 1
    clinic.post("CUFF-1", reading("systolic_bp", 150, ago(minutes=20)))
    assert clinic.active(pid) == []
    [resolved] = clinic.alerts(patient_id=pid)
    assert resolved["status"] == "resolved" and resolved["resolution"] == "auto"
    assert resolved["resolved_by"] == "system" and resolved["cleared_at"] is not None
    history = [h["type"] for h in clinic.detail(resolved["id"])["history"]]
    assert history == ["opened", "severity_raised", "resolved"]

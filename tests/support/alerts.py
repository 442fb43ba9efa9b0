"""Helpers for the alert tests: reading dicts at times relative to ``NOW``, the service settings
the tests drive themselves, and a small client that registers patients and devices, posts
readings and reads alerts as a clinic would."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from ingest.alerts.context import AlertsContext, alerts_context
from ingest.settings import Settings
from tests.support.service import RunningService

NOW = datetime.now(UTC).replace(microsecond=0)


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def ago(**kw: float) -> datetime:
    return NOW - timedelta(**kw)


def reading(metric: str, value: float, at: datetime, unit: str | None = None, **extra: Any) -> dict[str, Any]:
    units = {
        "heart_rate": "/min",
        "respiratory_rate": "/min",
        "spo2": "%",
        "body_temperature": "Cel",
        "systolic_bp": "mm[Hg]",
        "diastolic_bp": "mm[Hg]",
        "mean_arterial_pressure": "mm[Hg]",
        "body_weight": "kg",
        "blood_glucose": "mg/dL",
        "steps": "{steps}",
    }
    return {"metric": metric, "value": value, "unit": unit or units[metric], "measured_at": iso(at), **extra}


def alert_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "alert_scheduler_interval_s": 3600.0,  # tests drive ticks themselves
            "alert_stream_poll_s": 0.5,
            "alert_stream_heartbeat_s": 1.0,
            "webhook_backoff_base_s": 0.05,
            "webhook_backoff_max_s": 0.2,
            "webhook_timeout_s": 5.0,
            "mqtt_enabled": False,
        }
    )


@dataclass
class Clinic:
    """Drives the API as a clinic would."""

    svc: RunningService
    http: httpx.Client

    @property
    def ctx(self) -> AlertsContext:
        return alerts_context(self.svc.services)

    def patient(self, device_id: str = "DEV-1", mrn: str = "MRN-1", clinic: str = "default") -> str:
        r = self.http.post("/v1/patients", json={"mrn": mrn, "display_name": "Pat Example", "clinic": clinic})
        assert r.status_code == 201, r.text
        pid: str = r.json()["id"]
        self.device(device_id, pid, clinic=clinic)
        return pid

    def device(self, device_id: str, patient_id: str, clinic: str = "default") -> None:
        r = self.http.post("/v1/devices", json={"id": device_id, "type": "monitor", "clinic": clinic})
        assert r.status_code == 201, r.text
        r = self.http.put(
            f"/v1/devices/{device_id}/assignment",
            json={"patient_id": patient_id, "since": iso(NOW - timedelta(days=60))},
        )
        assert r.status_code == 200, r.text

    def post(self, device_id: str, *readings: dict[str, Any]) -> dict[str, Any]:
        r = self.http.post("/v1/readings", json={"device_id": device_id, "readings": list(readings)})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        assert not body["rejected"], body
        return body

    def alerts(self, **params: Any) -> list[dict[str, Any]]:
        r = self.http.get("/v1/alerts", params={"limit": 1000, **params})
        assert r.status_code == 200, r.text
        found: list[dict[str, Any]] = r.json()["alerts"]
        return found

    def active(self, patient_id: str, rule: str | None = None) -> list[dict[str, Any]]:
        found = self.alerts(patient_id=patient_id, status="open,acknowledged")
        return [a for a in found if rule is None or a["rule"] == rule]

    def detail(self, alert_id: str) -> dict[str, Any]:
        r = self.http.get(f"/v1/alerts/{alert_id}")
        assert r.status_code == 200, r.text
        found: dict[str, Any] = r.json()
        return found

    def set_threshold(self, patient_id: str, metric: str, **fields: Any) -> dict[str, Any]:
        r = self.http.put(f"/v1/patients/{patient_id}/thresholds/{metric}", json=fields)
        assert r.status_code == 200, r.text
        found: dict[str, Any] = r.json()
        return found

    def set_rule(self, patient_id: str, key: str, **body: Any) -> dict[str, Any]:
        r = self.http.put(f"/v1/patients/{patient_id}/alert-rules/{key}", json=body)
        assert r.status_code == 200, r.text
        found: dict[str, Any] = r.json()
        return found

    def events(self, after: int = 0) -> list[dict[str, Any]]:
        with self.svc.services.transaction() as conn:
            rows = conn.execute(
                "SELECT id, type, alert_id::text, alert->>'rule' FROM alert_events WHERE id > %s ORDER BY id",
                (after,),
            ).fetchall()
        return [{"id": r[0], "type": r[1], "alert_id": r[2], "rule": r[3]} for r in rows]

"""Small helpers for the browser tests: enrolling patients over the API, signing in."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from ingest.mqtt.config import broker_options
from ingest.mqtt.publisher import Publisher
from ingest.settings import Settings

NOW = datetime.now(UTC).replace(microsecond=0)


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def enrol(admin: httpx.Client, mrn: str, name: str, device: str, clinic: str = "default") -> str:
    r = admin.post("/v1/patients", json={"mrn": mrn, "display_name": name, "clinic": clinic})
    assert r.status_code == 201, r.text
    patient_id: str = r.json()["id"]
    r = admin.post("/v1/devices", json={"id": device, "type": "pulse_oximeter", "clinic": clinic})
    assert r.status_code == 201, r.text
    r = admin.put(
        f"/v1/devices/{device}/assignment",
        json={"patient_id": patient_id, "since": iso(NOW - timedelta(days=40))},
    )
    assert r.status_code == 200, r.text
    return patient_id


def post_readings(admin: httpx.Client, device: str, readings: list[dict[str, Any]]) -> None:
    for start in range(0, len(readings), 500):
        r = admin.post("/v1/readings", json={"device_id": device, "readings": readings[start : start + 500]})
        assert r.status_code == 200 and not r.json()["rejected"], r.text


def publish(settings: Settings, device: str, body: dict[str, Any]) -> None:
    """Publish one message at QoS 1 to the service's broker, as a device would."""
    options = broker_options(settings, client_id=f"{settings.mqtt_client_id}-device")
    with Publisher(options) as publisher:
        publisher.publish(
            f"{settings.mqtt_topic_prefix}/{device}/readings", json.dumps(body).encode(), timeout_s=10
        )
        assert publisher.flush(10), "the broker did not acknowledge the reading"


def sign_in(page: Any, base_url: str, token: str) -> None:
    page.goto(base_url + "/")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.locator("#topbar:not([hidden])").wait_for()

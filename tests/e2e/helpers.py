"""Small helpers for the browser tests: enrolling patients over the API, signing in."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from devices.mqtt.publisher import Publisher
from ingest.mqtt.config import options_from_settings
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
    options = options_from_settings(settings, client_id=f"{settings.mqtt_client_id}-device")
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


_AUDIT_JS = """
() => {
  const problems = [];
  const name = (el) =>
    (el.getAttribute("aria-label") || el.textContent || el.getAttribute("title") || "").trim();
  if (!document.documentElement.lang) problems.push("html has no lang");
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden") continue;
    if (!(el.labels && el.labels.length) && !el.getAttribute("aria-label")) {
      problems.push(`unlabelled ${el.tagName} #${el.id}`);
    }
  }
  for (const el of document.querySelectorAll("button, a[href]")) {
    if (!name(el)) problems.push(`${el.tagName} without an accessible name`);
  }
  for (const el of document.querySelectorAll("svg[role=img]")) {
    if (!el.getAttribute("aria-label")) problems.push("chart without a description");
  }
  const ids = [...document.querySelectorAll("[id]")].map((el) => el.id);
  for (const id of new Set(ids)) {
    if (ids.filter((x) => x === id).length > 1) problems.push(`duplicate id ${id}`);
  }
  if (document.querySelectorAll("main h1").length !== 1) problems.push("main needs exactly one h1");
  return problems;
}
"""


def assert_accessible(page: Any) -> None:
    """Basic, objective accessibility checks of the page as rendered."""
    problems = page.evaluate(_AUDIT_JS)
    assert not problems, problems

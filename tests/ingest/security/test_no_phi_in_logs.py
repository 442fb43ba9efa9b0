"""No patient identifier at INFO or above, and no token at any level, in the service's logs.

The whole service runs (every component, MQTT consumer included) under the production logging
set-up while a full flow goes through it, good paths and bad; every log record is captured,
formatted as JSON exactly as `RPM_LOG_FORMAT=json` writes it, and scanned.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ingest.logconfig import JsonFormatter, configure_logging
from ingest.settings import Settings
from tests.ingest.security.tenants import NOW, iso
from tests.support.service import RunningService, running_service

NAME = "Zebulon Quaxley-Marchetti"
MRN = "MRN-QX-99417"


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelno, self.format(record)))


@pytest.fixture
def captured() -> Iterator[Capture]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("DEBUG", "json")
    capture = Capture()
    root.addHandler(capture)
    try:
        yield capture
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def publish(url: str, topic: str, payloads: list[bytes]) -> None:
    host, port = url.removeprefix("mqtt://").split(":")
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="phi-test-device", protocol=paho.MQTTv5)
    client.connect(host, int(port))
    client.loop_start()
    try:
        for payload in payloads:
            client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def full_flow(svc: RunningService, topic_prefix: str, mqtt_url: str) -> list[str]:
    """Exercise the service the way a clinic does, mistakes included; return the tokens used."""
    from tests.support.mqtt_ingest import wait_ready
    from tests.support.waiting import wait_until

    admin_token = svc.token("admin", name="site-admin")
    admin = svc.client(admin_token)
    wait_ready(svc)
    r = admin.post("/v1/patients", json={"mrn": MRN, "display_name": NAME})
    assert r.status_code == 201
    patient_id = r.json()["id"]
    assert admin.post("/v1/patients", json={"mrn": MRN, "display_name": NAME}).status_code == 409
    assert (
        admin.post("/v1/patients", json={"mrn": MRN, "display_name": NAME, "clinic": "nowhere"}).status_code
        == 404
    )
    assert (
        admin.post("/v1/patients", json={"mrn": MRN, "display_name": NAME, "extra": NAME}).status_code == 422
    )
    assert admin.post("/v1/devices", json={"id": "PHI-CUFF", "type": "bp_cuff"}).status_code == 201
    assert admin.post("/v1/devices", json={"id": "PHI-OXI", "type": "pulse_oximeter"}).status_code == 201
    for device in ("PHI-CUFF", "PHI-OXI"):
        r = admin.put(
            f"/v1/devices/{device}/assignment",
            json={"patient_id": patient_id, "since": iso(NOW - timedelta(days=1))},
        )
        assert r.status_code == 200
    clinician_token = svc.token("clinician", name="nurse")
    device_token = svc.token("device", device="PHI-CUFF", name="cuff")
    clinician = svc.client(clinician_token)
    device = svc.client(device_token)

    # HTTP ingest: good, critical (alert), implausible, malformed, someone else's device
    readings = [
        {"metric": "heart_rate", "value": 72, "unit": "/min", "measured_at": iso(NOW - timedelta(minutes=9))},
        {
            "metric": "heart_rate",
            "value": 150,
            "unit": "/min",
            "measured_at": iso(NOW - timedelta(minutes=8)),
        },
        {
            "metric": "heart_rate",
            "value": 9000,
            "unit": "/min",
            "measured_at": iso(NOW - timedelta(minutes=7)),
        },
    ]
    assert (
        device.post("/v1/readings", json={"device_id": "PHI-CUFF", "readings": readings}).status_code == 200
    )
    assert (
        device.post(
            "/v1/readings", content=f'{{"device_id": "PHI-CUFF", "name": "{NAME}"'.encode()
        ).status_code
        == 400
    )
    assert device.post("/v1/readings", json={"device_id": "PHI-OXI", "readings": readings}).status_code == 403

    # MQTT ingest: good, malformed with the patient's name in it, unknown device
    topic = f"{topic_prefix}/PHI-OXI/readings"
    good = {"metric": "spo2", "value": 97, "unit": "%", "measured_at": iso(NOW - timedelta(minutes=6))}
    publish(mqtt_url, topic, [json.dumps(good).encode(), f'{{"patient": "{NAME}", "mrn": "{MRN}"'.encode()])
    publish(mqtt_url, f"{topic_prefix}/UNKNOWN-1/readings", [json.dumps(good).encode()])

    def stored() -> bool:
        r = clinician.get(f"/v1/patients/{patient_id}/readings", params={"metric": "spo2"})
        return r.status_code == 200 and len(r.json()["readings"]) == 1

    wait_until(stored, what="the MQTT reading")

    # reading it all back, as a clinician would
    assert clinician.get(f"/v1/patients/{patient_id}").status_code == 200
    assert clinician.get("/v1/patients", params={"q": NAME}).status_code == 200
    assert clinician.get("/v1/patients", params={"q": MRN}).status_code == 200
    assert clinician.get(f"/v1/patients/{patient_id}/readings", params={"bucket": "1h"}).status_code == 200
    assert clinician.get(f"/v1/patients/{patient_id}/devices").status_code == 200
    alerts = clinician.get("/v1/alerts", params={"patient_id": patient_id}).json()["alerts"]
    assert alerts
    assert (
        clinician.post(
            f"/v1/alerts/{alerts[0]['id']}/acknowledge", json={"note": f"called {NAME}"}
        ).status_code
        == 200
    )
    assert clinician.get("/v1/dashboard/patients").status_code == 200
    assert clinician.get(f"/v1/dashboard/patients/{patient_id}").status_code == 200
    assert clinician.get("/dashboard/").status_code in (200, 404)
    assert admin.get("/v1/dead-letters").status_code == 200
    assert admin.get("/v1/audit", params={"patient_id": patient_id}).status_code == 200

    # and the wrong ways in
    for bad in (admin_token[:-2] + "xx", clinician_token + "0"):
        assert svc.client(bad).get(f"/v1/patients/{patient_id}").status_code == 401
    assert device.get(f"/v1/patients/{patient_id}").status_code == 403
    for client in (admin, clinician, device):
        client.close()
    return [admin_token, clinician_token, device_token, patient_id]


def test_logs_hold_no_patient_identifiers_or_tokens(
    settings: Settings, topic_prefix: str, mqtt_url: str, captured: Capture
) -> None:
    with running_service(settings, factories=None) as svc:
        *tokens, patient_id = full_flow(svc, topic_prefix, mqtt_url)
    assert len(captured.lines) > 10, "the flow should have logged something"
    for level, line in captured.lines:
        json.loads(line)  # RPM_LOG_FORMAT=json writes one JSON object per line
        for token in tokens:
            assert token not in line and token[4:20] not in line, f"a token in the log: {line}"
        if level >= logging.INFO:
            for identifier in (NAME, MRN, patient_id, "Quaxley"):
                assert identifier not in line, f"patient identifier at level {level}: {line}"

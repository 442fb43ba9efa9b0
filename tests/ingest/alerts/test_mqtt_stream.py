"""End to end over the real broker: a clinician's stream shows the alert raised by a reading
published over MQTT, and the clinician acknowledges and resolves it."""

from __future__ import annotations

import json

from devices.mqtt.publisher import Publisher
from ingest.alerts.component import alerts_component
from ingest.mqtt.consumer import mqtt_component
from ingest.settings import Settings
from tests.ingest.alerts.sse import SSEClient
from tests.support.alerts import Clinic, ago, alert_settings, reading
from tests.support.mqtt_ingest import publisher_options, wait_ready
from tests.support.service import running_service


def test_sse_client_receives_an_alert_opened_by_an_mqtt_reading(settings: Settings, mqtt_url: str) -> None:
    s = alert_settings(settings).model_copy(update={"mqtt_enabled": True})
    with running_service(s, factories=[alerts_component, mqtt_component]) as svc:
        wait_ready(svc)
        with svc.client(svc.token("admin")) as http:
            pid = Clinic(svc, http).patient("OXI-MQTT-1")
        nurse_token = svc.token("clinician", clinic="default", name="Nurse Joy")
        with (
            SSEClient(svc.base_url, nurse_token) as stream,
            Publisher(publisher_options(mqtt_url, client_id=f"pub-{s.mqtt_client_id}")) as pub,
        ):
            payload = {
                "readings": [reading("spo2", 84, ago(minutes=1)), reading("heart_rate", 95, ago(minutes=1))]
            }
            pub.publish(f"{s.mqtt_topic_prefix}/OXI-MQTT-1/readings", json.dumps(payload).encode())
            pub.flush()
            event = stream.next(timeout=30)
            alert = event.data["alert"]
            assert (event.data["type"], alert["patient_id"], alert["metric"], alert["severity"]) == (
                "opened",
                pid,
                "spo2",
                "critical",
            )
            with svc.client(nurse_token) as nurse:
                assert nurse.post(f"/v1/alerts/{alert['id']}/acknowledge").status_code == 200
                assert stream.next().data["type"] == "acknowledged"
                r = nurse.post(f"/v1/alerts/{alert['id']}/resolve", json={"note": "oxygen on"})
                assert r.status_code == 200 and r.json()["resolved_by"] == "Nurse Joy"
                assert stream.next().data["type"] == "resolved"

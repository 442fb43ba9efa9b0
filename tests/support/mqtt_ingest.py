"""Helpers for tests of ingestion over MQTT: a registered patient and devices, reading payloads
and topics, what reached the database, publisher options, and the running consumer."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from devices.mqtt.options import BrokerOptions, broker_options
from ingest.mqtt.consumer import MqttConsumer
from ingest.store import roster
from tests.support.service import RunningService
from tests.support.waiting import wait_until

BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def register(pool: ConnectionPool, device_ids: list[str], *, mrn: str = "MRN-MQTT") -> str:
    """One patient wearing ``device_ids``, assigned since a day ago; returns the patient id."""
    with pool.connection() as conn, conn.transaction():
        patient = roster.create_patient(
            conn, clinic_id="default", mrn=mrn, display_name="Mqtt Example", fhir_patient_id=None
        )
        for device_id in device_ids:
            roster.create_device(
                conn, device_id=device_id, clinic_id="default", type_="pulse_oximeter",
                manufacturer=None, model=None, serial=None,
            )
            roster.assign_device(
                conn, device_id=device_id, patient_id=patient["id"], since=BASE - timedelta(days=1)
            )
    return str(patient["id"])


def measured_at(i: int) -> datetime:
    return BASE + timedelta(milliseconds=i)


def reading(i: int, **extra: Any) -> bytes:
    """A valid heart-rate reading, unique per ``i``."""
    body = {
        "metric": "heart_rate",
        "value": 60 + i % 40,
        "unit": "/min",
        "measured_at": measured_at(i).isoformat().replace("+00:00", "Z"),
        **extra,
    }
    return json.dumps(body).encode()


def topic(prefix: str, device_id: str) -> str:
    return f"{prefix}/{device_id}/readings"


def count_readings(url: str, device_id: str | None = None) -> int:
    with psycopg.connect(url) as conn:
        if device_id is None:
            row = conn.execute("SELECT count(*) FROM readings").fetchone()
        else:
            row = conn.execute("SELECT count(*) FROM readings WHERE device_id = %s", (device_id,)).fetchone()
    assert row is not None
    return int(row[0])


def dead_letters(url: str) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute("SELECT id, source, topic, device_id, reason, raw FROM dead_letters ORDER BY id")
        return cur.fetchall()


def publisher_options(url: str, *, protocol: str = "5", client_id: str = "test-pub") -> BrokerOptions:
    return broker_options(url, client_id=client_id, protocol=protocol)


def metric(svc: RunningService, name: str, **labels: str) -> float:
    """A sample from the service's Prometheus registry (what /metrics shows)."""
    value = svc.services.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def consumer_of(svc: RunningService) -> MqttConsumer:
    for component in svc.runtime.components:
        consumer = component.extras.get("mqtt")
        if isinstance(consumer, MqttConsumer):
            return consumer
    raise AssertionError("no MQTT consumer running")


def wait_ready(svc: RunningService, timeout_s: float = 20.0) -> None:
    check = svc.services.readiness["mqtt"]
    wait_until(lambda: check()[0], timeout_s, "the MQTT consumer to be connected and subscribed")


class CommitChecker:
    """Before each PUBACK reaches the broker, check (directly, not through the proxy) that the
    reading it acknowledges is committed."""

    def __init__(self, db_url: str) -> None:
        self.conn = psycopg.connect(db_url, autocommit=True)
        self.violations: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, _topic: str, payload: bytes) -> bool:
        body = json.loads(payload)
        at = datetime.fromisoformat(body["measured_at"].replace("Z", "+00:00"))
        with self.lock:
            row = self.conn.execute(
                "SELECT 1 FROM readings WHERE metric = %s AND measured_at = %s", (body["metric"], at)
            ).fetchone()
        if row is None:
            self.violations.append(body["measured_at"])
        return True

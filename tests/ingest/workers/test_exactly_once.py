"""Exactly once across the worker processes of ``rpm-ingest serve --workers 3``: one alert for a
patient whose readings the broker spread over the three, and every reading exported to the EHR
once although three export workers (one per process) claim from the same outbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from tests.support.export import add_patient, ehr_patient
from tests.support.fhir_test_server import FhirTestServer, run_fhir_server
from tests.support.mosquitto import Mosquitto
from tests.support.serve_workers import (
    DEVICE,
    assert_each_once,
    publish,
    service_environment,
    serving,
    wait_stored,
)
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def fhir_server() -> Iterator[FhirTestServer]:
    with run_fhir_server() as server:
        yield server


def test_one_alert_for_a_patient_whose_readings_three_workers_store(
    db_url: str, patient: str, topic_prefix: str, broker: Mosquitto, tmp_path: Path
) -> None:
    n = 600  # ~200 per worker (Mosquitto hands a shared group's messages out in turn)
    env = service_environment(db_url, broker.url, topic_prefix, tmp_path)
    with serving(env, tmp_path / "serve.log", workers=3):
        # 150 /min: over the critical bound of the default heart-rate rule, in every reading
        publish(broker.port, f"{topic_prefix}/{DEVICE}/readings", 0, n, value=150)
        wait_stored(db_url, n)
    assert_each_once(db_url, DEVICE, range(n))
    with psycopg.connect(db_url) as conn:
        alerts = conn.execute(
            "SELECT rule_key, severity, status FROM alerts WHERE patient_id = %s", (patient,)
        ).fetchall()
        opened = conn.execute(
            "SELECT count(*) FROM alert_events WHERE patient_id = %s AND type = 'opened'", (patient,)
        ).fetchone()
    assert alerts == [("threshold:heart_rate", "critical", "open")]
    assert opened == (1,)


def test_each_reading_exported_once_by_three_workers(
    db_url: str, pool: ConnectionPool, topic_prefix: str, broker: Mosquitto, tmp_path: Path,
    fhir_server: FhirTestServer,
) -> None:  # fmt: skip
    fhir_server.reset()
    ehr_patient(fhir_server)
    device = "F0F1F2F3F4F5"
    add_patient(pool, fhir_patient_id="pat-1", device_id=device)
    n = 300
    env = service_environment(
        db_url, broker.url, topic_prefix, tmp_path,
        RPM_FHIR_BASE_URL=fhir_server.base_url,
        RPM_FHIR_POLL_INTERVAL_S="0.1",
        RPM_FHIR_BUNDLE_SIZE="20",  # many claims, so the three workers race for rows
    )  # fmt: skip
    with serving(env, tmp_path / "serve.log", workers=3):
        publish(broker.port, f"{topic_prefix}/{device}/readings", 0, n)
        wait_stored(db_url, n)
        wait_until(lambda: len(fhir_server.search("Observation")) >= n, 180, f"{n} Observations in the EHR")
        wait_until(lambda: _unsent(pool) == 0, 60, "every outbox row marked sent")
    assert_each_once(db_url, device, range(n))
    found = fhir_server.search("Observation")
    identifiers = [o["identifier"][0]["value"] for o in found]
    assert len(identifiers) == len(set(identifiers)) == n
    assert len(fhir_server.search("Device")) == 1


def _unsent(pool: ConnectionPool) -> int:
    with pool.connection() as conn:
        row = conn.execute("SELECT count(*) FROM outbox WHERE status <> 'sent'").fetchone()
    assert row is not None
    return int(row[0])

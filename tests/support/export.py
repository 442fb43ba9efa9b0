"""Helpers for the clinic's export tests: reading dicts an hour old, and a patient with a device
whose readings go through the real pipeline into the FHIR outbox."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from fhir_export.table import build_table
from ingest.export.outbox import OutboxWriter
from ingest.pipeline import Envelope, Outcome, Pipeline
from ingest.store import roster
from ingest.store.deadletters import DeadLetter
from tests.support.fhir_test_server import FhirTestServer

# Readings are an hour old: accepted by the pipeline (not in the future), whole seconds.
T0 = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def hr(value: float = 72, *, minute: float = 0, **extra: Any) -> dict[str, Any]:
    return {"metric": "heart_rate", "value": value, "unit": "/min", "measured_at": at(minute), **extra}


def bp(
    systolic: float | None = 128,
    diastolic: float | None = 84,
    mean: float | None = None,
    *,
    minute: float = 0,
) -> list[dict[str, Any]]:
    parts = [("systolic_bp", systolic), ("diastolic_bp", diastolic), ("mean_arterial_pressure", mean)]
    return [
        {"metric": metric, "value": value, "unit": "mm[Hg]", "measured_at": at(minute)}
        for metric, value in parts
        if value is not None
    ]


@dataclass
class Home:
    """A clinic patient with one assigned device, and the pipeline that writes the outbox."""

    pool: ConnectionPool
    pipeline: Pipeline
    patient_id: UUID
    device_id: str

    def ingest(self, readings: Sequence[dict[str, Any]], *, device_id: str | None = None) -> Outcome:
        device = device_id or self.device_id
        body = json.dumps({"readings": list(readings)}).encode()
        envelope = Envelope(source="test", raw=body, received_at=datetime.now(UTC), device_id=device)
        letters: list[DeadLetter] = []
        with self.pool.connection() as conn, conn.transaction():
            (outcome,) = self.pipeline.process(conn, [envelope], collect=letters)
        assert letters == []
        assert not outcome.rejected and outcome.error is None, outcome
        return outcome

    def rows(self, **where: Any) -> list[dict[str, Any]]:
        clauses = " AND ".join(f"{k} = %({k})s" for k in where) or "true"
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(f"SELECT * FROM outbox WHERE {clauses} ORDER BY id", where)
            return cur.fetchall()

    def execute(self, query: str, params: Any = None) -> None:
        with self.pool.connection() as conn, conn.transaction():
            conn.execute(query, params)

    def make_due(self) -> None:
        self.execute("UPDATE outbox SET next_attempt_at = now() WHERE status = 'pending'")


def add_patient(
    pool: ConnectionPool,
    *,
    mrn: str = "MRN-1",
    fhir_patient_id: str | None = None,
    device_id: str = "F0F1F2F3F4F5",
    clinic: str = "default",
) -> UUID:
    with pool.connection() as conn, conn.transaction():
        patient = roster.create_patient(
            conn, clinic_id=clinic, mrn=mrn, display_name="Test Patient", fhir_patient_id=fhir_patient_id
        )
        roster.create_device(
            conn, device_id=device_id, clinic_id=clinic, type_="blood_pressure_monitor",
            manufacturer="Omron", model="HEM-7600T", serial="20231104001",
        )  # fmt: skip
        roster.assign_device(
            conn, device_id=device_id, patient_id=patient["id"], since=T0 - timedelta(days=1)
        )
    patient_id: UUID = patient["id"]
    return patient_id


def make_home(
    pool: ConnectionPool,
    *,
    fhir_patient_id: str | None,
    panel_wait_s: float = 30.0,
    destinations: tuple[str, ...] = ("fhir",),
) -> Home:
    patient_id = add_patient(pool, fhir_patient_id=fhir_patient_id)
    writer = OutboxWriter(build_table(), destinations=destinations, panel_wait_s=panel_wait_s)
    pipeline = Pipeline(hooks=[writer])
    return Home(pool, pipeline, patient_id, "F0F1F2F3F4F5")


def ehr_patient(server: FhirTestServer, fhir_id: str = "pat-1") -> str:
    server.put({"resourceType": "Patient", "id": fhir_id})
    return fhir_id

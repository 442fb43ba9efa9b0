"""A stored strip's outbox rows: one per destination, in the ingest transaction, once."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from devices.ecg import strip_id
from ingest.ecg.outbox import StripOutboxWriter, ecg_destinations
from ingest.pipeline import Envelope, Pipeline
from ingest.settings import Settings
from ingest.store.deadletters import DeadLetter
from tests.support.ecg import at, register_cardiac, wire_strip


def ingest(pool: ConnectionPool, pipeline: Pipeline, device: str, *readings: dict[str, Any]) -> None:
    raw = json.dumps({"readings": list(readings)}).encode()
    envelope = Envelope(source="test", raw=raw, received_at=datetime.now(UTC), device_id=device)
    letters: list[DeadLetter] = []
    with pool.connection() as conn, conn.transaction():
        pipeline.process(conn, [envelope], collect=letters)
    assert letters == []


def rows(pool: ConnectionPool) -> list[tuple[str, str, str, str]]:
    with pool.connection() as conn:
        found = conn.execute(
            "SELECT destination, kind, item_ref, status FROM outbox ORDER BY destination"
        ).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in found]


def test_destinations_follow_the_settings(settings: Settings) -> None:
    assert ecg_destinations(settings) == ("fhir",)
    pacs = settings.model_copy(update={"dicomweb_url": "http://127.0.0.1:8042/dicom-web"})
    assert ecg_destinations(pacs) == ("fhir", "dicom")
    c_store = settings.model_copy(update={"dicom_ae": "ORTHANC@127.0.0.1:4242"})
    assert ecg_destinations(c_store) == ("fhir", "dicom")
    assert ecg_destinations(settings.model_copy(update={"dicom_ae": "  "})) == ("fhir",)


def test_one_row_per_destination_written_with_the_strip_and_never_twice(pool: ConnectionPool) -> None:
    with pool.connection() as conn:
        register_cardiac(conn, "PATCH-O")
    pipeline = Pipeline(strip_hooks=[StripOutboxWriter(("fhir", "dicom"))])
    strip = wire_strip("PATCH-O", 5, seconds=2)
    ingest(pool, pipeline, "PATCH-O", strip)
    ingest(pool, pipeline, "PATCH-O", strip)  # a duplicate: no new row
    ref = str(strip_id("PATCH-O", at(5)))
    # the EHR's row waits for the patient's link; the PACS needs none
    assert rows(pool) == [("dicom", "ecg", ref, "pending"), ("fhir", "ecg", ref, "waiting")]


def test_a_failing_hook_stores_neither_the_strip_nor_its_rows(pool: ConnectionPool) -> None:
    with pool.connection() as conn:
        register_cardiac(conn, "PATCH-P")
    pipeline = Pipeline(strip_hooks=[StripOutboxWriter(("fhir", "NOT A DESTINATION!"))])
    with pytest.raises(psycopg.errors.CheckViolation):
        ingest(pool, pipeline, "PATCH-P", wire_strip("PATCH-P", 5, seconds=1))
    with pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM ecg_strips").fetchone() == (0,)
    assert rows(pool) == []

"""Stored strips with their ``dicom`` outbox rows in a test's database, and a look at the rows: what
the ECG feature writes in the ingest transaction, for the DICOM delivery tests."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from psycopg_pool import ConnectionPool

from devices.ecg import EcgStrip
from dicom_export.stow import StowClient
from fhir_export.worker import Backoff
from ingest.dicom.reader import DicomJob, dicom_reader
from ingest.dicom.sender import DicomSender, Store
from ingest.ecg.store import insert_strip
from ingest.export.destinations import DICOM
from ingest.export.outbox import NewItem, PgOutbox, enqueue_items
from tests.support.dicom import make_strip
from tests.support.mqtt_ingest import BASE, register

DEVICE = "ecg-card-7"


def strips_with_rows(pool: ConnectionPool, count: int, *, timezone: str = "Europe/Berlin",
                     **strip: Any) -> tuple[str, list[EcgStrip]]:  # fmt: skip
    """A patient (MRN ``MRN-ECG``) wearing one ECG card and ``count`` stored strips a minute apart,
    each with its ``dicom`` outbox row; returns the patient id and the strips."""
    patient = register(pool, [DEVICE], mrn="MRN-ECG")
    strips = [
        make_strip(device_id=DEVICE, measured_at=BASE + timedelta(minutes=i), **strip) for i in range(count)
    ]
    with pool.connection() as conn, conn.transaction():
        conn.execute("UPDATE clinics SET timezone = %s WHERE id = 'default'", (timezone,))
        for s in strips:
            insert_strip(conn, s, received_at=datetime.now(UTC))
        enqueue_items(
            conn,
            [NewItem(UUID(patient), DEVICE, DICOM, "ecg", str(s.id), s.measured_at, "ecg") for s in strips],
        )
    return patient, strips


def sender(pool: ConnectionPool, pacs_url: str, http: Any, *, batch_size: int = 20) -> DicomSender:
    """A sender storing with STOW-RS under ``pacs_url``."""
    return sender_to(pool, StowClient(http, pacs_url), batch_size=batch_size)


def sender_to(pool: ConnectionPool, pacs: Store, *, batch_size: int = 20) -> DicomSender:
    outbox: PgOutbox[DicomJob] = PgOutbox(
        pool, worker="test-dicom", destination=DICOM, reader=dicom_reader, lease_s=60
    )
    return DicomSender(outbox, pacs, batch_size=batch_size, backoff=Backoff(), rng=random.Random(7))


def rows(pool: ConnectionPool) -> list[dict[str, Any]]:
    """The ``dicom`` rows in claim order (by id): status, reference, attempts, last error, due in (s)."""
    with pool.connection() as conn:
        found = conn.execute(
            "SELECT item_ref, status, fhir_reference, created_in_ehr, attempts, last_error,"
            " extract(epoch FROM next_attempt_at - now()) FROM outbox WHERE destination = 'dicom'"
            " ORDER BY id"
        ).fetchall()
    keys = ("item_ref", "status", "reference", "created", "attempts", "last_error", "due_in_s")
    return [dict(zip(keys, row, strict=True)) for row in found]

"""Put the demo clinic in the registry: clinic, patients, devices, assignments. Idempotent."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg

from ingest.demo.clinic import CLINIC_ID, CLINIC_NAME, HISTORY_DAYS, DemoPatient
from ingest.errors import NotFound
from ingest.store import roster
from ingest.store.tokens import create_token

logger = logging.getLogger(__name__)


def ensure_clinic(conn: psycopg.Connection[Any]) -> None:
    try:
        roster.get_clinic(conn, CLINIC_ID)
    except NotFound:
        roster.create_clinic(conn, CLINIC_ID, CLINIC_NAME)


def ensure_patient(conn: psycopg.Connection[Any], patient: DemoPatient) -> UUID:
    rows = roster.list_patients(conn, clinic_ids=[CLINIC_ID], search=patient.mrn, limit=5)
    for row in rows:
        if row["mrn"] == patient.mrn:
            found: UUID = row["id"]
            return found
    row = roster.create_patient(
        conn,
        clinic_id=CLINIC_ID,
        mrn=patient.mrn,
        display_name=patient.display_name,
        fhir_patient_id=patient.fhir_patient_id,
    )
    created: UUID = row["id"]
    return created


def ensure_device(
    conn: psycopg.Connection[Any], device_id: str, type_: str, maker: str, model: str,
    patient_id: UUID, since: datetime, battery: int | None = None,
) -> None:
    try:
        roster.get_device(conn, device_id)
    except NotFound:
        roster.create_device(
            conn, device_id=device_id, clinic_id=CLINIC_ID, type_=type_, manufacturer=maker,
            model=model, serial=f"SN-{device_id.upper()}",
        )
    if battery is not None:
        conn.execute("UPDATE devices SET battery_level = %s WHERE id = %s", (battery, device_id))
    current = roster.device_assignments(conn, device_id)
    if not current or current[-1]["patient_id"] != patient_id:
        roster.assign_device(conn, device_id=device_id, patient_id=patient_id, since=since)


def register(
    conn: psycopg.Connection[Any], patients: Sequence[DemoPatient], now: datetime
) -> dict[str, UUID]:
    """Create what is missing; returns MRN -> patient id."""
    ensure_clinic(conn)
    since = (now - timedelta(days=HISTORY_DAYS + 2)).replace(hour=0, minute=0, second=0, microsecond=0)
    ids: dict[str, UUID] = {}
    for patient in patients:
        ids[patient.mrn] = ensure_patient(conn, patient)
        for device in patient.devices:
            ensure_device(conn, device.id, device.type, device.manufacturer, device.model,
                          ids[patient.mrn], since, device.battery)
    logger.info("demo clinic registered: %d patients", len(ids))
    return ids


def admin_token(conn: psycopg.Connection[Any], now: datetime) -> str:
    """A fresh admin token for this demo run, valid for a week."""
    secret, _ = create_token(conn, name="demo dashboard", role="admin", expires_at=now + timedelta(days=7))
    return secret

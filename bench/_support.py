"""What the benchmarks share: a fresh, migrated database of their own on the local server, and one
patient with a set of devices assigned to it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from ingest.db.migrate import migrate

ADMIN_URL = os.environ.get("RPM_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def fresh_database(prefix: str = "rpm_bench") -> Iterator[str]:
    """Create and migrate ``<prefix>_<random>``; drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urlunsplit(urlsplit(ADMIN_URL)._replace(path="/" + name))
    try:
        migrate(url, timescale_mode="off")
        yield url
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def enrol_patient(url: str, *, fhir_patient_id: str, devices: int, since: datetime) -> None:
    """One patient (linked to ``fhir_patient_id`` in the EHR) with devices ``bench-000``... assigned
    to it from a day before ``since``."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "INSERT INTO patients (clinic_id, mrn, display_name, fhir_patient_id)"
            " VALUES ('default', 'B-1', 'Bench Patient', %s) RETURNING id",
            (fhir_patient_id,),
        ).fetchone()
        assert row is not None
        for d in range(devices):
            device = f"bench-{d:03d}"
            conn.execute(
                "INSERT INTO devices (id, clinic_id, type, manufacturer)"
                " VALUES (%s, 'default', 'monitor', 'Acme')",
                (device,),
            )
            conn.execute(
                "INSERT INTO device_assignments (device_id, patient_id, since) VALUES (%s, %s, %s)",
                (device, row[0], since - timedelta(days=1)),
            )

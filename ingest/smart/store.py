"""SQL of the SMART launch: pending launches (migration 0015) and the patient a context names."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from ingest.smart.launch import LaunchSecrets, digest


@dataclass(frozen=True, slots=True)
class PendingLaunch:
    """A launch taken back at the callback (the row is gone: a state works once)."""

    browser_hash: bytes
    issuer: str
    clinic_id: str
    launch: str | None
    code_verifier: str
    nonce: str
    expired: bool


def clinic_exists(conn: psycopg.Connection[Any], clinic_id: str) -> bool:
    return conn.execute("SELECT 1 FROM clinics WHERE id = %s", (clinic_id,)).fetchone() is not None


def save_launch(
    conn: psycopg.Connection[Any],
    secrets: LaunchSecrets,
    *,
    issuer: str,
    clinic_id: str,
    launch: str | None,
    ttl_s: int,
) -> datetime:
    """Keep a launch until its callback (or its expiry); launches expired earlier are purged."""
    conn.execute("DELETE FROM smart_launches WHERE expires_at < now()")
    row = conn.execute(
        "INSERT INTO smart_launches (state_hash, browser_hash, issuer, clinic_id, launch, code_verifier,"
        " nonce, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, now() + make_interval(secs => %s))"
        " RETURNING expires_at",
        (
            digest(secrets.state),
            digest(secrets.browser),
            issuer,
            clinic_id,
            launch,
            secrets.code_verifier,
            secrets.nonce,
            ttl_s,
        ),
    ).fetchone()
    assert row is not None
    expires_at: datetime = row[0]
    return expires_at


def take_launch(conn: psycopg.Connection[Any], state: str) -> PendingLaunch | None:
    """Remove and return the launch of ``state`` (None when unknown or already taken)."""
    row = conn.execute(
        "DELETE FROM smart_launches WHERE state_hash = %s"
        " RETURNING browser_hash, issuer, clinic_id, launch, code_verifier, nonce, expires_at <= now()",
        (digest(state),),
    ).fetchone()
    if row is None:
        return None
    return PendingLaunch(
        browser_hash=bytes(row[0]),
        issuer=row[1],
        clinic_id=row[2],
        launch=row[3],
        code_verifier=row[4],
        nonce=row[5],
        expired=bool(row[6]),
    )


def patients_with_fhir_id(conn: psycopg.Connection[Any], clinic_id: str, fhir_patient_id: str) -> list[UUID]:
    """The patients of ``clinic_id`` linked to the EHR's ``Patient/<fhir_patient_id>``."""
    rows = conn.execute(
        "SELECT id FROM patients WHERE clinic_id = %s AND fhir_patient_id = %s ORDER BY created_at LIMIT 2",
        (clinic_id, fhir_patient_id),
    ).fetchall()
    return [r[0] for r in rows]

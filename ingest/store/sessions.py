"""SQL for browser sessions (table ``web_sessions``, migration 0015).

A session is what a SMART launch leaves in the browser: a random secret in an httpOnly cookie and
a CSRF token the dashboard echoes in a header. Only their SHA-256 digests are stored. A session
belongs to one clinic, carries the clinician role, and ends at ``expires_at`` or when revoked.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import psycopg

from ingest.store.tokens import Principal

SESSION_PREFIX: Final = "rpms_"  # never a valid API token (those start with rpm_), nor the reverse
MAX_SECRET_LENGTH: Final = 200


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session just opened: its secrets are known only here (and then only to the browser)."""

    id: UUID
    secret: str
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ResolvedSession:
    principal: Principal
    csrf_hash: bytes


def create_session(
    conn: psycopg.Connection[Any], *, clinic_id: str, fhir_user: str, issuer: str, ttl_s: int
) -> NewSession:
    """Open a clinician session for ``clinic_id``; expired sessions of the past day are purged."""
    secret = SESSION_PREFIX + secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    conn.execute("DELETE FROM web_sessions WHERE expires_at < now() - interval '1 day'")
    row = conn.execute(
        "INSERT INTO web_sessions (secret_hash, csrf_hash, role, clinic_id, fhir_user, issuer, expires_at)"
        " VALUES (%s, %s, 'clinician', %s, %s, %s, now() + make_interval(secs => %s))"
        " RETURNING id, expires_at",
        (digest(secret), digest(csrf), clinic_id, fhir_user, issuer, ttl_s),
    ).fetchone()
    assert row is not None
    return NewSession(id=row[0], secret=secret, csrf_token=csrf, expires_at=row[1])


def resolve_session(conn: psycopg.Connection[Any], secret: str) -> ResolvedSession | None:
    """The principal of a live (known, unexpired, unrevoked) session, or None."""
    if not secret.startswith(SESSION_PREFIX) or len(secret) > MAX_SECRET_LENGTH:
        return None
    row = conn.execute(
        "SELECT id, fhir_user, role, clinic_id, csrf_hash FROM web_sessions"
        " WHERE secret_hash = %s AND revoked_at IS NULL AND expires_at > now()",
        (digest(secret),),
    ).fetchone()
    if row is None:
        return None
    principal = Principal(
        token_id=row[0], name=row[1], role=row[2], clinic_id=row[3], device_id=None, session=True
    )
    return ResolvedSession(principal=principal, csrf_hash=bytes(row[4]))


def revoke_session(conn: psycopg.Connection[Any], session_id: UUID) -> bool:
    """End a session now; False when it had already ended."""
    row = conn.execute(
        "UPDATE web_sessions SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL RETURNING id",
        (session_id,),
    ).fetchone()
    return row is not None

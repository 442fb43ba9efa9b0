"""SQL for API tokens. Tokens are random; only their SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal
from uuid import UUID

import psycopg

from ingest.errors import NotFound

Role = Literal["admin", "clinician", "device"]
ROLES: Final[tuple[Role, ...]] = ("admin", "clinician", "device")
TOKEN_PREFIX: Final = "rpm_"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the resolved, valid token."""

    token_id: UUID
    name: str
    role: Role
    clinic_id: str | None
    device_id: str | None
    #: A browser session opened by a SMART launch (cookie, CSRF-checked) rather than a bearer token;
    #: ``token_id`` is then the session's id and ``name`` the EHR user (``fhirUser``).
    session: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def can_see_clinic(self, clinic_id: str) -> bool:
        return self.is_admin or self.clinic_id == clinic_id


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def create_token(
    conn: psycopg.Connection[Any],
    *,
    name: str,
    role: Role,
    clinic_id: str | None = None,
    device_id: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[str, UUID]:
    """Create a token; return the secret (shown once) and the token's id."""
    if role == "device" and device_id is None:
        raise ValueError("a device token needs a device")
    if clinic_id is not None:
        row = conn.execute("SELECT 1 FROM clinics WHERE id = %s", (clinic_id,)).fetchone()
        if row is None:
            raise NotFound(f"clinic {clinic_id!r} not found")
    if device_id is not None:
        row = conn.execute("SELECT clinic_id FROM devices WHERE id = %s", (device_id,)).fetchone()
        if row is None:
            raise NotFound(f"device {device_id!r} not found")
        clinic_id = clinic_id or row[0]
    if role == "clinician" and clinic_id is None:
        clinic_id = "default"
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = conn.execute(
        "INSERT INTO api_tokens (name, role, clinic_id, device_id, token_hash, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (name, role, clinic_id, device_id, hash_token(secret), expires_at),
    ).fetchone()
    assert row is not None
    return secret, row[0]


# last_used_at is kept to the minute: a token in steady use (a gateway posting every few seconds)
# would otherwise turn every request into a write and a WAL flush. The audit log has every use.
LAST_USED_RESOLUTION_S: Final = 60
_RESOLVE: Final = f"""
WITH valid AS (
    SELECT id, name, role, clinic_id, device_id, last_used_at FROM api_tokens
    WHERE token_hash = %s AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
), touched AS (
    UPDATE api_tokens t SET last_used_at = now() FROM valid v
    WHERE t.id = v.id
      AND (v.last_used_at IS NULL
           OR v.last_used_at < now() - make_interval(secs => {LAST_USED_RESOLUTION_S}))
)
SELECT id, name, role, clinic_id, device_id FROM valid
"""


def resolve_token(conn: psycopg.Connection[Any], secret: str) -> Principal | None:
    """The principal of a valid (known, unexpired, unrevoked) token, or None."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    row = conn.execute(_RESOLVE, (hash_token(secret),)).fetchone()
    if row is None:
        return None
    return Principal(token_id=row[0], name=row[1], role=row[2], clinic_id=row[3], device_id=row[4])


def revoke_token(conn: psycopg.Connection[Any], token_id: UUID) -> None:
    row = conn.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL RETURNING id",
        (token_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no active token {token_id}")

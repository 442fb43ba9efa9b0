"""API tokens: only a hash is stored; expiry, revocation (``rpm-ingest token revoke``), last use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg
import pytest
from click.testing import CliRunner

from ingest.cli import cli
from ingest.store.tokens import create_token, hash_token
from tests.support.service import RunningService


def new_token(svc: RunningService, **kwargs: object) -> tuple[str, UUID]:
    with svc.services.transaction() as conn:
        return create_token(conn, name="t", role="clinician", clinic_id="default", **kwargs)  # type: ignore[arg-type]


def token_row(svc: RunningService, token_id: UUID) -> tuple[bytes, datetime | None, datetime | None]:
    with svc.services.pool.connection() as conn:
        row = conn.execute(
            "SELECT token_hash, last_used_at, revoked_at FROM api_tokens WHERE id = %s", (token_id,)
        ).fetchone()
    assert row is not None
    return bytes(row[0]), row[1], row[2]


def test_only_the_hash_is_stored_and_last_use_is_recorded(service: RunningService) -> None:
    secret, token_id = new_token(service)
    stored, last_used, _ = token_row(service, token_id)
    assert stored == hash_token(secret) and secret.encode() not in stored
    assert last_used is None
    with service.client(secret) as client:
        assert client.get("/v1/patients").status_code == 200
    _, first_use, _ = token_row(service, token_id)
    assert first_use is not None
    with service.client(secret) as client:
        assert client.get("/v1/patients").status_code == 200
    _, second_use, _ = token_row(service, token_id)
    assert second_use is not None and second_use >= first_use


def test_last_use_is_written_at_most_once_a_minute(service: RunningService) -> None:
    secret, token_id = new_token(service)
    with service.client(secret) as client:
        assert client.get("/v1/patients").status_code == 200
        _, first_use, _ = token_row(service, token_id)
        assert client.get("/v1/patients").status_code == 200  # within the minute: no write
        assert token_row(service, token_id)[1] == first_use
        with service.services.transaction() as conn:  # a minute later, it is written again
            conn.execute(
                "UPDATE api_tokens SET last_used_at = last_used_at - interval '61 seconds' WHERE id = %s",
                (token_id,),
            )
        assert client.get("/v1/patients").status_code == 200
    _, later_use, _ = token_row(service, token_id)
    assert first_use is not None and later_use is not None and later_use > first_use


def test_an_expired_token_is_refused(service: RunningService) -> None:
    expired, _ = new_token(service, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    valid, _ = new_token(service, expires_at=datetime.now(UTC) + timedelta(days=1))
    with service.client(expired) as client:
        r = client.get("/v1/patients")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    with service.client(valid) as client:
        assert client.get("/v1/patients").status_code == 200


def test_a_token_revoked_with_the_command_is_refused(service: RunningService) -> None:
    secret, token_id = new_token(service)
    with service.client(secret) as client:
        assert client.get("/v1/patients").status_code == 200
        env = {"RPM_DATABASE_URL": service.runtime.database_url}
        result = CliRunner().invoke(cli, ["token", "revoke", str(token_id)], env=env)
        assert result.exit_code == 0, result.output
        assert client.get("/v1/patients").status_code == 401
        assert client.get(f"/v1/patients/{token_id}").status_code == 401
        again = CliRunner().invoke(cli, ["token", "revoke", str(token_id)], env=env)
        assert again.exit_code == 1 and "no active token" in again.output
    _, _, revoked_at = token_row(service, token_id)
    assert revoked_at is not None


def test_a_created_token_works_and_is_printed_once(service: RunningService) -> None:
    env = {"RPM_DATABASE_URL": service.runtime.database_url}
    result = CliRunner().invoke(
        cli, ["token", "create", "--role", "clinician", "--name", "ward 3", "--expires-in-days", "1"], env=env
    )
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()
    with service.client(secret) as client:
        assert client.get("/v1/patients").status_code == 200


@pytest.mark.parametrize(
    "credentials",
    [
        "rpm_",
        "not-our-prefix",
        "rpm_" + "a" * 500,
        "rpm_\x01",
        "rpm_' OR '1'='1",
        "Basic dXNlcjpwYXNz",
    ],
)
def test_hostile_tokens_are_refused(service: RunningService, credentials: str) -> None:
    with service.client() as client:
        headers = {
            "Authorization": credentials if credentials.startswith("Basic") else f"Bearer {credentials}"
        }
        r = client.get("/v1/patients", headers=headers)
        assert r.status_code == 401, r.text


def test_a_clinician_token_always_has_a_clinic(service: RunningService) -> None:
    assert service.runtime.database_url is not None
    with psycopg.connect(service.runtime.database_url) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO api_tokens (name, role, token_hash) VALUES ('x', 'clinician', '\\x00')")

"""The audit log: every access to patient data, who/what/when/where, append-only, admin-queryable."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from ingest.security.audit import EXEMPT_PATHS, is_audited_route, redacted_query
from tests.ingest.security.route_cases import CASES, PUBLIC_ROUTES, api_routes, perform
from tests.ingest.security.tenants import make_tenants
from tests.support.service import RunningService


def audit_rows(svc: RunningService) -> list[dict[str, Any]]:
    with svc.services.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM audit_log ORDER BY id").fetchall()


def test_every_v1_route_is_audited(full_service: RunningService) -> None:
    """Walk the app's routes, call each one, and find its row in the audit log."""
    north, south, _ = make_tenants(full_service)
    expected: set[tuple[str, str]] = set()
    for info in api_routes(full_service):
        if not info.template.startswith("/v1/"):
            continue
        assert is_audited_route(info.route), f"{info.template} is exempt from the audit log"
        for method in info.methods - {"HEAD", "OPTIONS"}:
            expected.add((method, info.template))
            for probe in CASES[(method, info.template)](north, south):
                perform(north.client, probe)
    audited = {(r["method"], r["route"]) for r in audit_rows(full_service) if r["token_id"] is not None}
    assert not expected - audited, f"routes that left no audit row: {sorted(expected - audited)}"
    assert not [p for p in EXEMPT_PATHS if p.startswith("/v1")]
    assert EXEMPT_PATHS <= PUBLIC_ROUTES


def test_reads_and_writes_record_who_what_when_where(full_service: RunningService) -> None:
    north, _, admin = make_tenants(full_service)
    before = len(audit_rows(full_service))
    r = north.client.get(f"/v1/patients/{north.patient_id}/readings", headers={"User-Agent": "ward-tablet/2"})
    assert r.status_code == 200
    request_id = r.headers["x-request-id"]
    [read] = [row for row in audit_rows(full_service)[before:] if str(row["request_id"]) == request_id]
    assert read["actor_name"] == "nurse-north" and read["actor_role"] == "clinician"
    assert read["actor_clinic"] == "north" and read["token_id"] is not None
    assert read["client_addr"] == "127.0.0.1" and read["user_agent"] == "ward-tablet/2"
    assert read["method"] == "GET" and read["route"] == "/v1/patients/{patient_id}/readings"
    assert read["action"] == "read" and read["status"] == 200
    assert str(read["patient_id"]) == north.patient_id and read["at"] is not None

    body = {
        "device_id": north.device_id,
        "readings": [
            {"metric": "body_weight", "value": 77.125, "unit": "kg", "measured_at": "2026-01-02T03:04:05Z"}
        ],
    }
    r = admin.post("/v1/readings", json=body)
    assert r.status_code == 200
    [write] = [row for row in audit_rows(full_service) if str(row["request_id"]) == r.headers["x-request-id"]]
    assert write["action"] == "write" and write["actor_role"] == "admin" and write["route"] == "/v1/readings"
    assert write["status"] == 200  # written in the transaction that stored the reading: one row

    # Refused before anything is stored: the middleware writes the row, with the refusal.
    device_token = full_service.token("device", device=north.device_id)
    with full_service.client(device_token) as device:
        body["device_id"] = "SOMEONE-ELSE"
        refused = device.post("/v1/readings", json=body)
    assert refused.status_code == 403
    refused_id = refused.headers["x-request-id"]
    [row] = [row for row in audit_rows(full_service) if str(row["request_id"]) == refused_id]
    assert row["status"] == 403 and row["actor_role"] == "device"


def test_refused_and_anonymous_attempts_are_audited_too(full_service: RunningService) -> None:
    north, south, _ = make_tenants(full_service)
    r = north.client.get(f"/v1/patients/{south.patient_id}")
    assert r.status_code == 404
    with full_service.client() as anonymous:
        assert anonymous.get(f"/v1/patients/{south.patient_id}").status_code == 401
        assert anonymous.get("/healthz").status_code == 200
    rows = [row for row in audit_rows(full_service) if row["route"] == "/v1/patients/{patient_id}"]
    assert [(row["status"], row["actor_clinic"]) for row in rows] == [(404, "north"), (401, None)]
    assert all(str(row["patient_id"]) == south.patient_id for row in rows)
    assert not [row for row in audit_rows(full_service) if row["route"] == "/healthz"]


def test_audit_rows_hold_no_reading_values_names_or_tokens(full_service: RunningService) -> None:
    north, south, admin = make_tenants(full_service)
    north.client.get("/v1/patients", params={"q": north.patient_name})
    north.client.get("/v1/patients", params={"q": north.mrn, "limit": 5})
    north.client.get(f"/v1/patients/{north.patient_id}/readings", params={"metric": "heart_rate"})
    dump = repr(audit_rows(full_service))
    for secret in ("61.375", north.patient_name, north.mrn, south.patient_name, north.token, south.token):
        assert secret not in dump
    queries = {row["query"] for row in audit_rows(full_service) if row["route"] == "/v1/patients"}
    assert {"q=redacted", "q=redacted&limit=5"} <= queries


def test_audit_log_is_append_only(full_service: RunningService) -> None:
    north, _, _ = make_tenants(full_service)
    assert audit_rows(full_service)
    assert full_service.runtime.database_url is not None
    with psycopg.connect(full_service.runtime.database_url, autocommit=True) as conn:
        for statement in (
            "UPDATE audit_log SET actor_name = 'someone else'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(statement)  # type: ignore[arg-type]
        conn.execute(
            "INSERT INTO audit_log (request_id, method, route, path, action, status)"
            " VALUES (gen_random_uuid(), 'GET', '/x', '/x', 'read', 200)"
        )


def test_no_audit_no_data(full_service: RunningService) -> None:
    """When the audit row cannot be written the caller gets 503 and none of the data."""
    north, _, _ = make_tenants(full_service)
    assert full_service.runtime.database_url is not None
    with psycopg.connect(full_service.runtime.database_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE audit_log RENAME TO audit_log_away")
        try:
            r = north.client.get(f"/v1/patients/{north.patient_id}")
            assert r.status_code == 503 and r.headers["retry-after"] == "5"
            assert north.patient_name not in r.text and north.mrn not in r.text
        finally:
            conn.execute("ALTER TABLE audit_log_away RENAME TO audit_log")
    r = north.client.get(f"/v1/patients/{north.patient_id}")
    assert r.status_code == 200 and r.json()["mrn"] == north.mrn


def test_admins_query_the_audit_log(full_service: RunningService) -> None:
    north, south, admin = make_tenants(full_service)
    for _ in range(3):
        assert north.client.get(f"/v1/patients/{north.patient_id}").status_code == 200
    assert south.client.get(f"/v1/patients/{south.patient_id}").status_code == 200

    r = admin.get("/v1/audit", params={"patient_id": north.patient_id, "route": "/v1/patients/{patient_id}"})
    assert r.status_code == 200, r.text
    events = r.json()["events"]
    assert len(events) == 3 and {e["actor_name"] for e in events} == {"nurse-north"}
    assert [e["id"] for e in events] == sorted((e["id"] for e in events), reverse=True)

    page1 = admin.get("/v1/audit", params={"clinic": "north", "limit": 2}).json()
    assert len(page1["events"]) == 2 and page1["next_before_id"] == page1["events"][-1]["id"]
    page2 = admin.get("/v1/audit", params={"clinic": "north", "before_id": page1["next_before_id"]}).json()
    assert all(e["id"] < page1["next_before_id"] for e in page2["events"])
    assert admin.get("/v1/audit", params={"action": "write"}).json()["events"]

    assert north.client.get("/v1/audit").status_code == 403
    assert admin.get("/v1/audit", params={"since": "2026-01-01T00:00:00"}).status_code == 422
    for bad in ({"limit": 0}, {"limit": 100000}, {"before_id": -1}, {"patient_id": "nope"}, {"action": "x"}):
        assert admin.get("/v1/audit", params=bad).status_code == 422, bad


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", None),
        (b"q=Alice+Smith&limit=5", "q=redacted&limit=5"),
        (b"MRN=123&status=open", "MRN=redacted&status=open"),
        (b"token=rpm_secret", "token=redacted"),
        (b"metric=heart_rate&metric=spo2", "metric=heart_rate&metric=spo2"),
        (b"%ff%fe=%00", "%EF%BF%BD%EF%BF%BD=%00"),  # undecodable bytes become U+FFFD, NUL stays escaped
        (b"a=" + b"x" * 5000, "a=" + "x" * 100),
    ],
)
def test_query_strings_are_recorded_without_identifying_values(raw: bytes, expected: str | None) -> None:
    assert redacted_query(raw) == expected

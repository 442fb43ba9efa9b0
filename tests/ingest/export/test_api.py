"""``GET /v1/exports``, ``POST /v1/exports/{id}/retry``, ``PATCH /v1/patients/{id}`` and the export
metrics, on the real HTTP service (no EHR configured: rows wait), with tenancy and hostile input."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ingest.export.component import fhir_export_component
from ingest.settings import Settings
from tests.support.export import at, bp, hr
from tests.support.service import RunningService, running_service


@pytest.fixture
def service(settings: Settings) -> Iterator[RunningService]:
    with running_service(settings, factories=[fhir_export_component]) as svc:
        yield svc


@pytest.fixture
def admin(service: RunningService) -> Iterator[httpx.Client]:
    with service.client(service.token("admin")) as client:
        yield client


def register(client: httpx.Client, *, clinic: str = "default", device: str = "CUFF-1",
             mrn: str = "MRN-1", fhir_id: str | None = None) -> str:  # fmt: skip
    body: dict[str, Any] = {"mrn": mrn, "display_name": "Ada Example", "clinic": clinic}
    if fhir_id is not None:
        body["fhir_patient_id"] = fhir_id
    r = client.post("/v1/patients", json=body)
    assert r.status_code == 201, r.text
    patient: str = r.json()["id"]
    r = client.post("/v1/devices", json={"id": device, "type": "bp_cuff", "clinic": clinic})
    assert r.status_code == 201, r.text
    r = client.put(f"/v1/devices/{device}/assignment", json={"patient_id": patient, "since": at(-24 * 60)})
    assert r.status_code == 200, r.text
    return patient


def post(client: httpx.Client, device: str, readings: list[dict[str, Any]]) -> dict[str, Any]:
    r = client.post("/v1/readings", json={"device_id": device, "readings": readings})
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def fail(service: RunningService, export_id: int, reason: str) -> None:
    with service.services.transaction() as conn:
        conn.execute(
            "UPDATE outbox SET status = 'failed', last_error = %s, attempts = 3 WHERE id = %s",
            (reason, export_id),
        )


def test_counts_failures_and_waiting_patients(service: RunningService, admin: httpx.Client) -> None:
    waiting_patient = register(admin)
    register(admin, device="HR-2", mrn="MRN-2", fhir_id="pat-2")
    post(admin, "CUFF-1", [hr(70, minute=0), *bp(minute=1)])
    post(admin, "HR-2", [hr(60, minute=0), hr(61, minute=1), hr(62, minute=2)])
    summary = admin.get("/v1/exports").json()
    assert summary["enabled"] is False
    assert summary["counts"] == {"pending": 3, "waiting": 2, "sent": 0, "failed": 0}
    assert summary["failures"] == []
    (waiting,) = summary["waiting"]
    assert waiting["patient_id"] == waiting_patient and waiting["rows"] == 2
    assert "FHIR Patient id" in waiting["reason"]

    pending = admin.get("/v1/exports/rows", params={"status": "pending"}).json()
    fail(service, pending[0]["id"], "EHR refused (HTTP 422): unknown code")
    summary = admin.get("/v1/exports").json()
    assert summary["counts"]["failed"] == 1
    (failure,) = summary["failures"]
    assert failure["reason"] == "EHR refused (HTTP 422): unknown code"
    assert (failure["metric"], failure["metrics"], failure["attempts"]) == ("heart_rate", ["heart_rate"], 3)
    assert admin.get(f"/v1/exports/{failure['id']}").json() == failure

    r = admin.post(f"/v1/exports/{failure['id']}/retry")
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["attempts"]) == ("pending", 0)
    assert admin.get("/v1/exports").json()["counts"] == {"pending": 3, "waiting": 2, "sent": 0, "failed": 0}

    panel = admin.get("/v1/exports/rows", params={"status": "waiting"}).json()
    assert {row["kind"] for row in panel} == {"reading", "bp_panel"}
    r = admin.post(f"/v1/exports/{panel[0]['id']}/retry")
    assert r.status_code == 409 and "FHIR Patient id" in r.json()["detail"]

    metrics = service.client().get("/metrics").text
    assert 'rpm_fhir_outbox_rows{status="waiting"} 2.0' in metrics
    assert 'rpm_fhir_outbox_rows{status="pending"} 3.0' in metrics
    assert 'rpm_fhir_export_rows_total{outcome="sent"} 0.0' in metrics


def test_linking_a_patient_releases_its_waiting_rows(service: RunningService, admin: httpx.Client) -> None:
    patient = register(admin)
    post(admin, "CUFF-1", [hr(70, minute=0), *bp(minute=1)])
    assert admin.get("/v1/exports").json()["counts"]["waiting"] == 2
    r = admin.patch(f"/v1/patients/{patient}", json={"fhir_patient_id": "ehr-123"})
    assert r.status_code == 200, r.text
    assert r.json()["fhir_patient_id"] == "ehr-123" and r.json()["display_name"] == "Ada Example"
    assert admin.get("/v1/exports").json()["counts"] == {"pending": 2, "waiting": 0, "sent": 0, "failed": 0}
    assert admin.get(f"/v1/patients/{patient}").json()["fhir_patient_id"] == "ehr-123"
    # New readings of a linked patient are pending at once.
    post(admin, "CUFF-1", [hr(71, minute=2)])
    assert admin.get("/v1/exports").json()["counts"]["pending"] == 3

    r = admin.patch(f"/v1/patients/{patient}", json={"display_name": "Ada B. Example"})
    assert r.json()["display_name"] == "Ada B. Example" and r.json()["fhir_patient_id"] == "ehr-123"
    r = admin.patch(f"/v1/patients/{patient}", json={"fhir_patient_id": None})
    assert r.status_code == 200 and r.json()["fhir_patient_id"] is None


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"display_name": None},
        {"display_name": ""},
        {"display_name": "x" * 201},
        {"fhir_patient_id": ""},
        {"fhir_patient_id": "x" * 65},
        {"fhir_patient_id": "has space"},
        {"fhir_patient_id": "Patient/123"},
        {"fhir_patient_id": "'; DROP TABLE patients; --"},
        {"fhir_patient_id": "ünïcode"},
        {"fhir_patient_id": 123},
        {"fhir_patient_id": ["a"]},
        {"mrn": "changed"},
        {"clinic": "other"},
    ],
)
def test_patch_refuses_bad_bodies(service: RunningService, admin: httpx.Client, body: dict[str, Any]) -> None:
    patient = register(admin)
    r = admin.patch(f"/v1/patients/{patient}", json=body)
    assert r.status_code == 422, (body, r.text)
    assert admin.get(f"/v1/patients/{patient}").json()["display_name"] == "Ada Example"


@pytest.mark.parametrize(
    "content", [b"", b"{", b"null", b"[]", b'"x"', b'{"display_name": "a"' + b" " * 10, b"\xff\xfe"]
)
def test_patch_refuses_malformed_json(service: RunningService, admin: httpx.Client, content: bytes) -> None:
    patient = register(admin)
    r = admin.patch(f"/v1/patients/{patient}", content=content, headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_patch_unknown_or_bad_patient_ids(service: RunningService, admin: httpx.Client) -> None:
    assert admin.patch("/v1/patients/5b7e1c1e-0000-4000-8000-000000000000",
                       json={"display_name": "x"}).status_code == 404  # fmt: skip
    assert admin.patch("/v1/patients/not-a-uuid", json={"display_name": "x"}).status_code == 422
    huge = admin.patch("/v1/patients/x", content=b'{"display_name": "' + b"a" * (2 * 1024 * 1024) + b'"}',
                       headers={"content-type": "application/json"})  # fmt: skip
    assert huge.status_code == 413


@pytest.mark.parametrize(
    "export_id", ["abc", "0", "-1", "1.5", "99999999999999999999", "9223372036854775808"]
)
def test_bad_export_ids(service: RunningService, admin: httpx.Client, export_id: str) -> None:
    assert admin.get(f"/v1/exports/{export_id}").status_code == 422
    assert admin.post(f"/v1/exports/{export_id}/retry").status_code == 422


def test_unknown_export_and_bad_queries(service: RunningService, admin: httpx.Client) -> None:
    assert admin.get("/v1/exports/9223372036854775807").status_code == 404
    assert admin.post("/v1/exports/424242/retry").status_code == 404
    for params in ({"limit": 0}, {"limit": 1001}, {"limit": "x"}, {"clinic": "bad clinic!"}):
        assert admin.get("/v1/exports", params=params).status_code == 422
    assert admin.get("/v1/exports/rows", params={"status": "lost"}).status_code == 422


def test_sent_rows_cannot_be_requeued(service: RunningService, admin: httpx.Client) -> None:
    register(admin, fhir_id="pat-1")
    post(admin, "CUFF-1", [hr(70)])
    (row,) = admin.get("/v1/exports/rows", params={"status": "pending"}).json()
    with service.services.transaction() as conn:
        conn.execute("UPDATE outbox SET status = 'sent', sent_at = now() WHERE id = %s", (row["id"],))
    r = admin.post(f"/v1/exports/{row['id']}/retry")
    assert r.status_code == 409 and "sent already" in r.json()["detail"]


def test_each_clinic_sees_only_its_own_exports(service: RunningService, admin: httpx.Client) -> None:
    assert admin.post("/v1/clinics", json={"id": "north", "name": "North"}).status_code == 201
    register(admin, fhir_id="pat-1")
    north_patient = register(admin, clinic="north", device="N-1", mrn="N-1")
    post(admin, "CUFF-1", [hr(70)])
    post(admin, "N-1", [hr(80, minute=1), hr(81, minute=2)])
    north_rows = admin.get("/v1/exports/rows", params={"status": "waiting", "clinic": "north"}).json()
    assert len(north_rows) == 2
    fail(service, north_rows[0]["id"], "refused")
    assert admin.get("/v1/exports").json()["counts"] == {"pending": 1, "waiting": 1, "sent": 0, "failed": 1}
    assert admin.get("/v1/exports", params={"clinic": "north"}).json()["counts"]["pending"] == 0

    with service.client(service.token("clinician", clinic="default")) as clinician:
        summary = clinician.get("/v1/exports").json()
        assert summary["counts"] == {"pending": 1, "waiting": 0, "sent": 0, "failed": 0}
        assert summary["failures"] == [] and summary["waiting"] == []
        assert clinician.get("/v1/exports", params={"clinic": "north"}).status_code == 403
        for path in (f"/v1/exports/{north_rows[0]['id']}", f"/v1/exports/{north_rows[1]['id']}"):
            assert clinician.get(path).status_code == 404
        assert clinician.post(f"/v1/exports/{north_rows[0]['id']}/retry").status_code == 404
        r = clinician.patch(f"/v1/patients/{north_patient}", json={"fhir_patient_id": "stolen"})
        assert r.status_code == 404
    with service.client(service.token("clinician", clinic="north")) as north:
        summary = north.get("/v1/exports").json()
        assert summary["counts"] == {"pending": 0, "waiting": 1, "sent": 0, "failed": 1}
        assert north.post(f"/v1/exports/{north_rows[0]['id']}/retry").status_code == 200
        assert (
            north.patch(f"/v1/patients/{north_patient}", json={"fhir_patient_id": "n-1"}).status_code == 200
        )
        assert north.get("/v1/exports").json()["counts"]["pending"] == 2
    assert admin.get(f"/v1/patients/{north_patient}").json()["fhir_patient_id"] == "n-1"


def test_devices_and_strangers_are_refused(service: RunningService, admin: httpx.Client) -> None:
    patient = register(admin, fhir_id="pat-1")
    post(admin, "CUFF-1", [hr(70)])
    (row,) = admin.get("/v1/exports/rows", params={"status": "pending"}).json()
    with service.client(service.token("device", device="CUFF-1")) as device:
        assert device.get("/v1/exports").status_code == 403
        assert device.post(f"/v1/exports/{row['id']}/retry").status_code == 403
        assert device.patch(f"/v1/patients/{patient}", json={"fhir_patient_id": "x"}).status_code == 403
    with service.client() as anonymous:
        assert anonymous.get("/v1/exports").status_code == 401
        assert anonymous.post(f"/v1/exports/{row['id']}/retry").status_code == 401
        assert anonymous.patch(f"/v1/patients/{patient}", json={"display_name": "x"}).status_code == 401
    with service.client("rpm_" + "x" * 43) as forged:
        assert forged.get("/v1/exports").status_code == 401


def test_retry_failed_requeues_a_clinics_or_a_patients_failures(
    service: RunningService, admin: httpx.Client
) -> None:
    assert admin.post("/v1/clinics", json={"id": "north", "name": "North"}).status_code == 201
    first = register(admin, fhir_id="pat-1")
    second = register(admin, device="HR-2", mrn="MRN-2", fhir_id="pat-2")
    north = register(admin, clinic="north", device="N-1", mrn="N-1", fhir_id="pat-n")
    post(admin, "CUFF-1", [hr(70, minute=0), hr(71, minute=1)])
    post(admin, "HR-2", [hr(72, minute=0)])
    post(admin, "N-1", [hr(73, minute=0)])
    for row in admin.get("/v1/exports/rows", params={"status": "pending"}).json():
        fail(service, row["id"], "EHR refused (HTTP 400): Patient/x does not resolve")
    with service.services.transaction() as conn:  # a late panel component is not requeued
        conn.execute(
            "UPDATE outbox SET kind = 'late_component', export_key = 'late:heart_rate',"
            " readings = jsonb_build_object('heart_rate', jsonb_build_object('value', value,"
            " 'unit', unit, 'original_value', original_value, 'original_unit', original_unit))"
            " WHERE id = (SELECT min(id) FROM outbox WHERE patient_id = %s)",
            (first,),
        )

    r = admin.post("/v1/exports/retry-failed", json={"patient_id": first})
    assert r.status_code == 200 and r.json() == {"requeued": 1}
    with service.client(service.token("clinician", clinic="default")) as clinician:
        r = clinician.post("/v1/exports/retry-failed", json={"patient_id": north})
        assert r.status_code == 404
        assert clinician.post("/v1/exports/retry-failed", json={"clinic": "north"}).status_code == 403
        assert clinician.post("/v1/exports/retry-failed", json={}).json() == {"requeued": 1}  # second's
    assert admin.get("/v1/exports", params={"clinic": "north"}).json()["counts"]["failed"] == 1
    assert admin.post("/v1/exports/retry-failed", json={}).json() == {"requeued": 1}  # north's
    assert admin.get("/v1/exports").json()["counts"] == {"pending": 3, "waiting": 0, "sent": 0, "failed": 1}
    del second

    for body in ({"patient_id": "not-a-uuid"}, {"everything": True}, {"clinic": "bad clinic"}, []):
        assert admin.post("/v1/exports/retry-failed", json=body).status_code == 422
    r = admin.post("/v1/exports/retry-failed", json={"patient_id": "5b7e1c1e-0000-4000-8000-000000000000"})
    assert r.status_code == 404
    with service.client(service.token("device", device="CUFF-1")) as device:
        assert device.post("/v1/exports/retry-failed", json={}).status_code == 403

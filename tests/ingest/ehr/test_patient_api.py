"""``ehr_link`` on ``GET /v1/patients/{id}``, ``POST /v1/patients/{id}/ehr-link`` and
``POST /v1/patients/import`` on the real HTTP service against the real local FHIR server:
registration links in the background, the import is bounded, names with markup stay text,
and the SMART Backend Services token carries the read scopes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhir_export.auth import SigningKey
from ingest.ehr.component import ehr_component
from ingest.settings import Settings
from tests.support.ehr import MRN_SYSTEM, ehr_patient
from tests.support.fhir_test_server import FhirTestServer
from tests.support.service import RunningService, running_service
from tests.support.waiting import wait_for_value


@pytest.fixture
def ehr_settings(settings: Settings, ehr: FhirTestServer) -> Settings:
    return settings.model_copy(
        update={"fhir_base_url": ehr.base_url, "fhir_patient_identifier_system": MRN_SYSTEM}
    )


@pytest.fixture
def service(ehr_settings: Settings) -> Iterator[RunningService]:
    with running_service(ehr_settings, factories=[ehr_component]) as svc:
        yield svc


@pytest.fixture
def admin(service: RunningService) -> Iterator[httpx.Client]:
    with service.client(service.token("admin")) as client:
        yield client


def register(client: httpx.Client, mrn: str, *, clinic: str = "default") -> dict[str, Any]:
    r = client.post("/v1/patients", json={"mrn": mrn, "display_name": "Ada Example", "clinic": clinic})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def test_registration_links_in_the_background(
    service: RunningService, admin: httpx.Client, ehr: FhirTestServer
) -> None:
    ehr.load_patients([ehr_patient("ehr-1", "MRN-1")])
    created = register(admin, "MRN-1")
    assert created["fhir_patient_id"] is None  # the request did not wait for the EHR
    assert created["ehr_link"] == {"status": "pending", "checked_at": None, "detail": None}

    def linked() -> dict[str, Any] | None:
        body: dict[str, Any] = admin.get(f"/v1/patients/{created['id']}").json()
        return body if body["ehr_link"]["status"] == "linked" else None

    found = wait_for_value(linked, timeout_s=30)
    assert found["fhir_patient_id"] == "ehr-1"
    assert found["ehr_link"]["detail"] == "found Patient/ehr-1 by MRN"
    assert found["ehr_link"]["checked_at"] is not None


def test_look_up_now_on_demand(service: RunningService, admin: httpx.Client, ehr: FhirTestServer) -> None:
    created = register(admin, "MRN-2")
    wait_for_value(
        lambda: admin.get(f"/v1/patients/{created['id']}").json()["ehr_link"]["checked_at"], timeout_s=30
    )
    assert admin.get(f"/v1/patients/{created['id']}").json()["ehr_link"]["status"] == "not_found"

    ehr.load_patients([ehr_patient("ehr-2", "MRN-2")])
    clinician = service.client(service.token("clinician", clinic="default"))
    r = clinician.post(f"/v1/patients/{created['id']}/ehr-link")
    assert r.status_code == 200, r.text
    assert r.json()["fhir_patient_id"] == "ehr-2"
    assert r.json()["ehr_link"]["status"] == "linked"


def test_look_up_is_tenant_scoped(service: RunningService, admin: httpx.Client) -> None:
    created = register(admin, "MRN-3")
    admin.post("/v1/clinics", json={"id": "north", "name": "North"})
    other = service.client(service.token("clinician", clinic="north"))
    assert other.post(f"/v1/patients/{created['id']}/ehr-link").status_code == 404
    assert admin.post("/v1/patients/00000000-0000-0000-0000-000000000000/ehr-link").status_code == 404
    assert admin.post("/v1/patients/not-a-uuid/ehr-link").status_code == 422


# ---------------------------------------------------------------------------------- import


def test_import_registers_and_links_the_members(
    service: RunningService, admin: httpx.Client, ehr: FhirTestServer
) -> None:
    existing = register(admin, "MRN-20")  # already registered by hand: updated, linked
    ehr.load_patients(
        [
            ehr_patient("m-1", "MRN-21", name="<script>alert(1)</script> Smith"),
            ehr_patient("m-2", "MRN-20", name="Bea Example"),
            ehr_patient("m-3", None, name="No Mrn"),
            {
                "resourceType": "Patient",
                "id": "m-4",
                "identifier": [{"system": MRN_SYSTEM, "value": "MRN-24"}],
            },
            ehr_patient("m-5", "MRN-21", name="Same Mrn"),
            {
                "resourceType": "Patient",
                "id": "m-6",
                "name": [{"given": ["Cy\u0000\u202e"], "family": "O'Neil"}],
                "identifier": [{"system": MRN_SYSTEM, "value": "MRN-26"}],
            },
        ]
    )
    ehr.put_group(
        "cohort-1",
        [
            "Patient/m-1", "Patient/m-2", "Patient/m-3", "Patient/m-4", "Patient/m-5", "Patient/m-6",
            "Patient/missing", "Practitioner/x", "Patient/m-1",
            {"entity": {"reference": "Patient/m-9"}, "inactive": True},
        ],
    )  # fmt: skip

    r = admin.post("/v1/patients/import", json={"group": "cohort-1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["created"], body["updated"]) == (2, 1)
    assert sorted((s["reference"], s["reason"]) for s in body["skipped"]) == sorted(
        [
            ("Patient/m-3", "no single MRN of the clinic's identifier system"),
            ("Patient/m-4", "no name"),
            ("Patient/m-5", "another member of the Group carries the same MRN"),
            ("Patient/missing", "not found in the EHR"),
            ("Practitioner/x", "not a reference to a Patient of this EHR"),
            ("Patient/m-9", "inactive in the Group"),
        ]
    )
    assert body["skipped_total"] == 6
    patients = {p["mrn"]: p for p in admin.get("/v1/patients").json()}
    assert patients["MRN-21"]["display_name"] == "<script>alert(1)</script> Smith"  # text, kept as text
    assert patients["MRN-21"]["fhir_patient_id"] == "m-1"
    assert patients["MRN-26"]["display_name"] == "Cy O'Neil"  # control and bidi characters dropped
    assert patients["MRN-20"]["id"] == existing["id"]
    assert patients["MRN-20"]["fhir_patient_id"] == "m-2"
    assert patients["MRN-20"]["ehr_link"]["detail"] == "imported from Group/cohort-1"

    again = admin.post("/v1/patients/import", json={"group": "cohort-1"}).json()
    assert (again["created"], again["updated"]) == (0, 3)  # idempotent


def test_import_refuses_what_it_cannot_do(
    service: RunningService, admin: httpx.Client, ehr: FhirTestServer
) -> None:
    ehr.load_patients([ehr_patient("x-1", "MRN-X")])
    register(admin, "MRN-X")
    # linked by hand to another EHR Patient: reported, not overwritten
    pid = admin.get("/v1/patients").json()[0]["id"]
    admin.patch(f"/v1/patients/{pid}", json={"fhir_patient_id": "other-1"})
    ehr.put_group("g-conflict", ["Patient/x-1"])
    body = admin.post("/v1/patients/import", json={"group": "g-conflict"}).json()
    assert body["skipped"] == [
        {"reference": "Patient/x-1", "reason": "the patient with this MRN is linked to Patient/other-1"}
    ]

    assert admin.post("/v1/patients/import", json={"group": "nope"}).status_code == 404
    assert admin.post("/v1/patients/import", json={"group": "bad id!"}).status_code == 422
    assert (
        admin.post("/v1/patients/import", json={"group": "g-conflict", "clinic": "nowhere"}).status_code
        == 404
    )
    assert admin.post("/v1/patients/import", json={"group": "g", "extra": 1}).status_code == 422
    clinician = service.client(service.token("clinician", clinic="default"))
    assert clinician.post("/v1/patients/import", json={"group": "g-conflict"}).status_code == 403

    ehr.inject({"action": "garbage", "match": "/fhir/Group"})
    r = admin.post("/v1/patients/import", json={"group": "g-conflict"})
    assert r.status_code == 502
    assert "not JSON" in r.json()["detail"]
    ehr.inject({"action": "status", "status": 503, "match": "/fhir/Patient"})
    r = admin.post("/v1/patients/import", json={"group": "g-conflict"})
    assert r.status_code == 502
    assert "HTTP 503" in r.json()["detail"]


def test_a_10000_member_group_is_bounded(ehr_settings: Settings, ehr: FhirTestServer) -> None:
    """10,000 members: refused whole above the limit (nothing registered), read in pages of
    100 Patients within it."""
    members = [f"Patient/big-{n}" for n in range(10_000)]
    ehr.put_group("big", members)
    small = ehr_settings.model_copy(update={"fhir_import_max_members": 5000})
    with running_service(small, factories=[ehr_component]) as svc, svc.client(svc.token("admin")) as admin:
        r = admin.post("/v1/patients/import", json={"group": "big"})
        assert r.status_code == 422
        assert r.json()["detail"] == (
            "Group/big has 10000 members; at most 5000 are imported at once (RPM_FHIR_IMPORT_MAX_MEMBERS)"
        )
        assert admin.get("/v1/patients").json() == []
    ehr.load_patients([ehr_patient(f"big-{n}", f"MRN-{n:05d}", name=f"Patient {n}") for n in range(10_000)])
    before = ehr.stats()["patient_searches"]
    with (
        running_service(ehr_settings, factories=[ehr_component]) as svc,
        svc.client(svc.token("admin")) as admin,
    ):
        r = admin.post("/v1/patients/import", json={"group": "big"}, timeout=600)
        assert r.status_code == 200, r.text
        assert (r.json()["created"], r.json()["skipped_total"]) == (10_000, 0)
    assert ehr.stats()["patient_searches"] - before == 100  # pages of 100


def test_without_ehr_import_answers_409(settings: Settings) -> None:
    with running_service(settings, factories=[ehr_component]) as svc, svc.client(svc.token("admin")) as admin:
        r = admin.post("/v1/patients/import", json={"group": "g"})
        assert r.status_code == 409
        created = register(admin, "MRN-1")
        r = admin.post(f"/v1/patients/{created['id']}/ehr-link")
        assert r.json()["ehr_link"] == {
            "status": "pending",
            "checked_at": r.json()["ehr_link"]["checked_at"],
            "detail": "RPM_FHIR_BASE_URL is not set: there is no EHR to search",
        }


def test_smart_backend_services_token_carries_the_read_scopes(
    ehr_settings: Settings, ehr: FhirTestServer, tmp_path: Path
) -> None:
    key = SigningKey.generate("RS384")
    key_file = tmp_path / "client.pem"
    key_file.write_bytes(key.private_pem())
    ehr.set_auth("smart")
    ehr.register_client("rpm-client", key.jwks())
    ehr.load_patients([ehr_patient("s-1", "MRN-S")])
    ehr.put_group("g-smart", ["Patient/s-1"])
    smart = ehr_settings.model_copy(
        update={
            "fhir_auth": "smart-backend",
            "fhir_client_id": "rpm-client",
            "fhir_private_key_file": key_file,
        }
    )
    with running_service(smart, factories=[ehr_component]) as svc, svc.client(svc.token("admin")) as admin:
        r = admin.post("/v1/patients/import", json={"group": "g-smart"})
        assert r.status_code == 200, r.text
        assert r.json()["created"] == 1
    assert ehr.stats()["tokens_issued"] >= 1


def test_clinic_observation_profile_setting(service: RunningService, admin: httpx.Client) -> None:
    assert admin.get("/v1/clinics").json()[0]["observation_profile"] == "base"
    r = admin.patch("/v1/clinics/default", json={"observation_profile": "us-core"})
    assert r.status_code == 200, r.text
    assert r.json()["observation_profile"] == "us-core"
    assert r.json()["timezone"] == "UTC"  # the rest unchanged
    assert admin.patch("/v1/clinics/default", json={"observation_profile": "epic"}).status_code == 422
    assert admin.patch("/v1/clinics/default", json={}).status_code == 422
    clinician = service.client(service.token("clinician", clinic="default"))
    assert clinician.patch("/v1/clinics/default", json={"observation_profile": "phd"}).status_code == 403

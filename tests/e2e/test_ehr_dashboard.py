"""The patients' EHR link on the dashboard, in a real browser against the real service and the
local FHIR server: each patient's link status, the "Look up in EHR" button, the admins' Group
import, and names from the EHR shown as text (markup never runs)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ingest.runtime import default_components
from ingest.settings import Settings
from tests.e2e.helpers import sign_in
from tests.support.ehr import MRN_SYSTEM, ehr_patient
from tests.support.fhir_test_server import FhirTestServer, run_fhir_server
from tests.support.service import RunningService, running_service

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def ehr() -> Iterator[FhirTestServer]:
    with run_fhir_server() as server:
        yield server


@pytest.fixture
def service(settings: Settings, ehr: FhirTestServer) -> Iterator[RunningService]:
    ehr.reset()
    linked = settings.model_copy(
        update={
            "fhir_base_url": ehr.base_url,
            "fhir_patient_identifier_system": MRN_SYSTEM,
            "fhir_patient_lookup_retry_s": 3600.0,
        }
    )
    with running_service(linked, factories=default_components()) as svc:
        yield svc


def test_link_status_look_up_and_import(page: Any, service: RunningService, ehr: FhirTestServer) -> None:
    admin = service.client(service.token("admin"))
    r = admin.post("/v1/patients", json={"mrn": "MRN-1", "display_name": "Nora Notfound"})
    patient_id = r.json()["id"]
    # the background look-up answers "not found" (the EHR does not have her yet)
    for _ in range(300):
        if admin.get(f"/v1/patients/{patient_id}").json()["ehr_link"]["status"] == "not_found":
            break
        page.wait_for_timeout(100)

    sign_in(page, service.base_url, service.token("admin", name="Ada Admin"))
    page.goto(service.base_url + "/dashboard/#/patients")
    row = page.locator(f"tr[data-patient-id='{patient_id}']")
    cell = row.locator("td.ehr-link")
    cell.filter(has_text="Not found").wait_for()
    assert "no Patient in the EHR carries this MRN" in cell.inner_text()

    ehr.load_patients([ehr_patient("ehr-1", "MRN-1")])
    row.get_by_role("button", name="Look up in EHR").click()
    page.locator(f"tr[data-patient-id='{patient_id}'] td.ehr-link[data-status='linked']").wait_for()
    assert row.get_by_role("button", name="Look up in EHR").count() == 0

    ehr.load_patients([ehr_patient("ehr-2", "MRN-2", name="<img src=x onerror=alert(1)><b>Bold</b> Smith")])
    ehr.put_group("cohort", ["Patient/ehr-2", "Patient/missing"])
    page.get_by_label("Import from an EHR Group (id)").fill("cohort")
    page.get_by_role("button", name="Import patients").click()
    result = page.locator(".import-result")
    result.filter(has_text="1 registered, 0 updated, 1 skipped").wait_for()
    assert "Patient/missing: not found in the EHR" in result.inner_text()
    name = page.locator("tr th a").filter(has_text="Smith")
    name.wait_for()
    assert name.inner_text() == "<img src=x onerror=alert(1)><b>Bold</b> Smith"  # text, not markup
    assert page.locator("tr img, tr th b").count() == 0


def test_clinicians_see_no_import(page: Any, service: RunningService) -> None:
    sign_in(page, service.base_url, service.token("clinician", clinic="default"))
    page.goto(service.base_url + "/dashboard/#/patients")
    page.locator(".patients-table").wait_for()
    assert page.get_by_role("button", name="Import patients").count() == 0

"""SMART on FHIR app launch in a real browser: a clinician opens the RPM page of the patient in
front of them from the (local) EHR with one click, in a session limited to the EHR's clinic."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from ingest.alerts.component import alerts_component
from ingest.dashboard.component import dashboard_component
from ingest.settings import Settings
from ingest.smart.component import smart_component
from tests.support.service import RunningService, free_port, running_service
from tests.support.smart_server import SmartTestServer, add_clinic, running_smart_server, smart_settings
from tests.support.waiting import wait_until

pytestmark = pytest.mark.browser


@pytest.fixture
def smart() -> Iterator[SmartTestServer]:
    with running_smart_server() as server:
        yield server


@pytest.fixture
def service(settings: Settings, smart: SmartTestServer) -> Iterator[RunningService]:
    """The dashboard, the alert stream it follows and SMART launch, registered with ``smart`` for
    clinic ``north``."""
    assert settings.database_url is not None
    add_clinic(settings.database_url, "north")
    port = free_port()
    configured = smart_settings(settings, smart, f"http://127.0.0.1:{port}")
    components = [alerts_component, dashboard_component, smart_component]
    with running_service(configured, factories=components, port=port) as svc:
        yield svc


def enrol(service: RunningService, name: str, fhir_id: str, clinic: str = "north") -> str:
    with service.client(service.token("admin")) as admin:
        r = admin.post(
            "/v1/patients",
            json={
                "mrn": f"M-{fhir_id}-{clinic}",
                "display_name": name,
                "clinic": clinic,
                "fhir_patient_id": fhir_id,
            },
        )
    assert r.status_code == 201, r.text
    patient_id: str = r.json()["id"]
    return patient_id


def session_cookie(page: Any) -> dict[str, Any]:
    [cookie] = [c for c in page.context.cookies() if c["name"] == "rpm_session"]
    return dict(cookie)


def test_one_click_in_the_ehr_opens_the_patients_page(
    page: Any, service: RunningService, smart: SmartTestServer
) -> None:
    hostile = '<img src=x onerror="window.__pwned=1">Ada North'
    patient = enrol(service, hostile, "pat-1")
    enrol(service, "Someone Else", "pat-2")
    enrol(service, "Other Clinic", "pat-1", clinic="default")

    page.goto(smart.ehr_page_url(f"{service.base_url}/smart/launch", "pat-1"))
    page.locator("#open-rpm").click()  # what the clinician does in the chart
    page.wait_for_url(re.compile(re.escape(f"{service.base_url}/dashboard/#/patients/{patient}") + "$"))
    page.get_by_role("heading", level=1, name=hostile).wait_for()
    assert page.evaluate("window.__pwned") is None
    assert page.locator("main img").count() == 0
    assert "Practitioner/test-clinician" in page.locator("#who").inner_text()
    assert "north" in page.locator("#who").inner_text()

    cookie = session_cookie(page)
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax"
    visible = page.evaluate("document.cookie")
    assert "rpm_session" not in visible and "rpm_csrf=" in visible
    assert page.evaluate("sessionStorage.length") == 0  # no token kept in the page
    assert "code=" not in page.url and "state=" not in page.url

    # The clinic's other patient is listed; the other clinic's is not.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Patients").click()
    page.locator(".patients-table tbody tr").first.wait_for()
    names = page.locator(".patients-table tbody th a").all_inner_texts()
    assert sorted(names) == sorted([hostile, "Someone Else"])

    # Signing out ends the session at the service (a CSRF-checked POST made by the dashboard).
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("API token").wait_for()

    def live_sessions() -> int:
        with service.services.transaction() as conn:
            row = conn.execute("SELECT count(*) FROM web_sessions WHERE revoked_at IS NULL").fetchone()
        assert row is not None
        return int(row[0])

    wait_until(lambda: live_sessions() == 0, what="the session ended at the service")
    page.reload()
    page.get_by_label("API token").wait_for()
    assert page.locator("#topbar").is_hidden()


def test_a_reload_keeps_the_session_and_a_new_tab_shares_it(
    page: Any, service: RunningService, smart: SmartTestServer
) -> None:
    patient = enrol(service, "Bo North", "pat-9")
    page.goto(smart.ehr_page_url(f"{service.base_url}/smart/launch", "pat-9"))
    page.locator("#open-rpm").click()
    page.get_by_role("heading", level=1, name="Bo North").wait_for()
    page.reload()
    page.get_by_role("heading", level=1, name="Bo North").wait_for()
    other = page.context.new_page()
    other.goto(f"{service.base_url}/dashboard/#/patients/{patient}")
    other.get_by_role("heading", level=1, name="Bo North").wait_for()
    other.close()


def test_standalone_launch_lands_on_the_chosen_patient(
    page: Any, service: RunningService, smart: SmartTestServer
) -> None:
    patient = enrol(service, "Cy North", "pat-3")
    smart.standalone_patient = "pat-3"
    page.goto(f"{service.base_url}/smart/launch?iss={smart.fhir_base}")
    page.wait_for_url(re.compile(re.escape(f"/dashboard/#/patients/{patient}") + "$"))
    page.get_by_role("heading", level=1, name="Cy North").wait_for()


def test_a_patient_not_enrolled_gets_a_page_saying_so(
    page: Any, service: RunningService, smart: SmartTestServer
) -> None:
    page.goto(smart.ehr_page_url(f"{service.base_url}/smart/launch", "pat-unknown"))
    page.locator("#open-rpm").click()
    page.get_by_role("heading", level=1, name="Patient not enrolled in remote monitoring").wait_for()
    assert "/smart/callback" in page.url
    assert page.locator("#topbar").count() == 0
    assert not [c for c in page.context.cookies() if c["name"] == "rpm_session"]


def test_an_ehr_the_service_does_not_know_is_refused_in_place(
    page: Any, service: RunningService, smart: SmartTestServer
) -> None:
    with running_smart_server() as stranger:
        page.goto(stranger.ehr_page_url(f"{service.base_url}/smart/launch", "pat-1"))
        page.locator("#open-rpm").click()
        page.get_by_role("heading", level=1, name="The launch was refused").wait_for()
        assert page.url.startswith(f"{service.base_url}/smart/launch")
        # The browser read the EHR's own page (and its favicon); the service asked it nothing.
        assert [r for r in stranger.requests if r.split()[1].startswith(("/fhir", "/auth"))] == []

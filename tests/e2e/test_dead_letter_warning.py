"""The dead-letter warning in a real browser against the real service: after one device floods
the dead letters with bad HTTP bodies, an admin sees a banner naming it; a clinician sees nothing
and never asks for the (admin-only) summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from ingest.settings import Settings
from tests.e2e.helpers import assert_accessible, sign_in
from tests.support.browser import save_screenshot
from tests.support.service import RunningService

pytestmark = pytest.mark.browser

LIMIT = 3  # RPM_DEAD_LETTER_LIMIT for these tests
BAD_BODIES = 12  # from one device: well over the limit in any window
SUMMARY_PATH = "/v1/dead-letters/summary"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A small dead-letter limit and an hour's window (the page fixture's service uses these)."""
    return settings.model_copy(update={"dead_letter_limit": LIMIT, "dead_letter_window_s": 3600})


@pytest.fixture
def admin(service: RunningService) -> httpx.Client:
    return service.client(service.token("admin", name="Test Admin"))


def flood(service: RunningService, admin: httpx.Client, device: str) -> None:
    """Malformed JSON bodies posted with the device's own token, as broken firmware would."""
    assert admin.post("/v1/devices", json={"id": device, "type": "bp_cuff"}).status_code == 201
    with service.client(service.token("device", device=device)) as client:
        for i in range(BAD_BODIES):
            body = b'{"device_id": "%s", "readings": [%d' % (device.encode(), i)  # cut short
            r = client.post("/v1/readings", content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 400, r.text


def summary_requests(page: Any) -> list[str]:
    """The URLs of the page's requests for dead letters, from now on."""
    seen: list[str] = []

    def on_request(request: Any) -> None:
        if "/v1/dead-letters" in request.url:
            seen.append(request.url)

    page.on("request", on_request)
    return seen


def test_an_admin_sees_which_device_floods_the_dead_letters(
    page: Any, service: RunningService, admin: httpx.Client, tmp_path: Path
) -> None:
    flood(service, admin, "CUFF-FLOOD")
    summary = admin.get(SUMMARY_PATH, params={"hours": 24}).json()
    assert summary["warnings"] and [f["device_id"] for f in summary["floods"]] == ["CUFF-FLOOD"] * len(
        summary["floods"]
    )
    summarised = sum(f["suppressed_count"] for f in summary["floods"])
    assert summarised >= BAD_BODIES - 2 * LIMIT  # whichever windows the posts fell into

    requests = summary_requests(page)
    sign_in(page, service.base_url, service.token("admin", name="Test Admin"))
    region = page.get_by_role("status").filter(has=page.locator(".admin-banner"))
    banner = region.locator(".admin-banner")
    banner.wait_for()
    assert region.get_attribute("id") == "admin-warnings"
    assert [u for u in requests if SUMMARY_PATH in u], "the banner comes from the summary endpoint"
    text = banner.inner_text()
    assert "Dead-letter warning" in text
    assert banner.locator("code.flood-key").all_inner_texts() == ["CUFF-FLOOD"]
    assert f"{summarised} letters summarised" in text
    assert summary["warnings"][0] in text  # the service's own sentence, as text
    assert "GET /v1/dead-letters?summaries=true" in text  # where the letters are listed
    assert_accessible(page)
    save_screenshot(page, "dead-letter-warning", tmp_path)

    # The banner stays across views and can be dismissed from the keyboard.
    page.get_by_role("link", name="Patients").click()
    page.get_by_role("heading", name="Patients").first.wait_for()
    assert banner.is_visible()
    dismiss = page.get_by_role("button", name="Dismiss until it changes")
    dismiss.focus()
    page.keyboard.press("Enter")
    banner.wait_for(state="detached")

    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("API token").wait_for()
    assert page.locator(".admin-banner").count() == 0


def test_an_admin_sees_no_banner_when_nothing_floods(page: Any, service: RunningService) -> None:
    with page.expect_response(lambda r: SUMMARY_PATH in r.url) as answer:
        sign_in(page, service.base_url, service.token("admin", name="Test Admin"))
    assert answer.value.ok
    page.locator(".live[data-state='live']").wait_for()
    assert page.locator(".admin-banner").count() == 0


def test_a_clinician_never_asks_for_the_summary_nor_sees_the_banner(
    page: Any, service: RunningService, admin: httpx.Client
) -> None:
    flood(service, admin, "CUFF-FLOOD")
    requests = summary_requests(page)
    sign_in(page, service.base_url, service.token("clinician", clinic="default", name="Nurse Jo"))
    page.locator(".live[data-state='live']").wait_for()
    page.get_by_role("link", name="Exports").click()
    page.get_by_role("heading", name="Exports", exact=True).wait_for()
    assert page.locator(".admin-banner").count() == 0
    assert page.locator("#admin-warnings").inner_text() == ""
    assert requests == []  # and so no 403 in the console either (the page fixture checks)

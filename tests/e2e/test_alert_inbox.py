"""The alert inbox in a real browser against the real service: a critical alert whose condition
cleared stays in the Active view marked "cleared — needs review" until acknowledged; one blood
pressure measurement is one item."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import NOW, assert_accessible, enrol, iso, post_readings, sign_in
from tests.support.browser import save_screenshot
from tests.support.service import RunningService

pytestmark = pytest.mark.browser


@pytest.fixture
def admin(service: RunningService) -> httpx.Client:
    return service.client(service.token("admin", name="Test Admin"))


def test_a_cleared_critical_alert_stays_until_acknowledged(
    page: Any, service: RunningService, admin: httpx.Client, tmp_path: Path
) -> None:
    patient = enrol(admin, "M-1", "Olive Oximetry", "OX-1")
    sign_in(page, service.base_url, service.token("clinician", clinic="default", name="Nurse Jo"))
    page.locator(".live[data-state='live']").wait_for()

    spo2 = {"metric": "spo2", "unit": "%"}
    post_readings(admin, "OX-1", [{**spo2, "value": 85, "measured_at": iso(NOW - timedelta(minutes=2))}])
    item = page.locator(".alert-list li.alert-critical").filter(has_text="Olive Oximetry")
    item.wait_for(timeout=20_000)
    assert item.locator(".pill-cleared").count() == 0

    # A normal reading a minute later: the condition cleared, but nobody has seen the alert yet.
    post_readings(admin, "OX-1", [{**spo2, "value": 97, "measured_at": iso(NOW - timedelta(minutes=1))}])
    badge = item.locator(".pill-cleared")
    badge.wait_for(timeout=20_000)  # arrives live, on the stream's 'cleared' event
    assert badge.inner_text().lower() == "cleared \u2014 needs review"
    assert item.get_attribute("data-status") == "open"
    assert "Condition cleared" in item.locator(".alert-meta").inner_text()
    assert page.locator("#alert-badge").inner_text() == "1"  # still counted: still to be seen
    assert_accessible(page)
    save_screenshot(page, "alert-inbox-cleared", tmp_path)

    page.reload()  # the state is the service's, not the page's
    item.locator(".pill-cleared").wait_for()

    item.get_by_role("button", name=re.compile("^Acknowledge")).click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Note (optional)").fill("Probe slipped; patient well on the phone.")
    dialog.get_by_role("button", name="Acknowledge").click()
    item.wait_for(state="detached")  # resolved: it leaves the Active view
    page.locator(".alert-list .empty").wait_for()

    [alert] = admin.get("/v1/alerts", params={"patient_id": patient}).json()["alerts"]
    assert alert["status"] == "resolved" and alert["acknowledged_by"] == "Nurse Jo"
    assert alert["cleared_at"] == iso(NOW - timedelta(minutes=1))


def test_one_blood_pressure_measurement_is_one_item(
    page: Any, service: RunningService, admin: httpx.Client, tmp_path: Path
) -> None:
    patient = enrol(admin, "M-2", "Bea Cuff", "CUFF-1")
    sign_in(page, service.base_url, service.token("clinician", clinic="default", name="Nurse Jo"))
    page.locator(".live[data-state='live']").wait_for()
    at = iso(NOW - timedelta(minutes=1))
    post_readings(
        admin,
        "CUFF-1",
        [
            {"metric": "systolic_bp", "value": 179, "unit": "mm[Hg]", "measured_at": at},
            {"metric": "diastolic_bp", "value": 106, "unit": "mm[Hg]", "measured_at": at},
        ],
    )
    items = page.locator(".alert-list li.alert").filter(has_text="Bea Cuff")
    items.first.wait_for(timeout=20_000)
    assert items.count() == 1
    title = items.first.locator(".alert-title").inner_text()
    assert title == "Blood pressure 179/106 mmHg above 160/100"
    assert items.first.get_attribute("data-severity") == "warning"
    save_screenshot(page, "alert-inbox-blood-pressure", tmp_path)

    # The patient's blood-pressure chart marks it where it began.
    page.goto(f"{service.base_url}/dashboard/#/patients/{patient}")
    page.locator("[data-chart='blood_pressure'] svg path.marker-warning").first.wait_for()

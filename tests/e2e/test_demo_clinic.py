"""The demo's synthetic clinic seen in the browser: 30 days of history for eight patients, the
alerts their history raised, and a live desaturation over MQTT. Also makes the README screenshots
(``RPM_UPDATE_SCREENSHOTS=1``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ingest.demo import seed_clinic
from ingest.settings import Settings
from tests.e2e.helpers import NOW, assert_accessible, iso, publish, sign_in
from tests.support.browser import save_screenshot
from tests.support.service import RunningService

pytestmark = pytest.mark.browser
ZONE = ZoneInfo("Europe/London")


def test_demo_clinic_in_the_dashboard(
    page: Any, service: RunningService, settings: Settings, tmp_path: Path
) -> None:
    seeded = seed_clinic(service.services, ZONE, NOW)
    api = service.client(seeded.token)
    patients = api.get("/v1/dashboard/patients", params={"tz": "Europe/London"}).json()["patients"]
    assert len(patients) == 8
    by_mrn = {p["mrn"]: p for p in patients}
    # The history raised what it should: Ada's weight gain, and nothing for the steady ones.
    ada = by_mrn["DEMO-1001"]
    assert ada["open_alerts"]["total"] >= 1
    assert by_mrn["DEMO-1005"]["days_with_readings_30d"] >= 29  # today may have just begun
    assert by_mrn["DEMO-1006"]["days_with_readings_30d"] < 30  # the patient who forgets
    assert "no reading for over 24 h" in by_mrn["DEMO-1007"]["attention"]
    walter = api.get(f"/v1/dashboard/patients/{by_mrn['DEMO-1007']['id']}").json()
    assert [d["battery_level"] for d in walter["devices"]] == [9]
    # Seeding again (a demo restart) stores nothing twice.
    again = seed_clinic(service.services, ZONE, NOW)
    assert again.ids == seeded.ids

    tomas = seeded.ids["DEMO-1002"]
    publish(settings, "demo-ox-1002", {"readings": [
        {"metric": "spo2", "value": 83, "unit": "%", "measured_at": iso(NOW)},
        {"metric": "heart_rate", "value": 104, "unit": "/min", "measured_at": iso(NOW)},
    ]})
    sign_in(page, service.base_url, seeded.token)
    critical = page.locator(".alert-list li.alert-critical").filter(has_text="Tomás Okafor")
    critical.wait_for(timeout=20_000)
    assert_accessible(page)
    save_screenshot(page, "alert-inbox", tmp_path)

    page.get_by_role("link", name="Patients").click()
    page.locator(".patients-table tbody tr").nth(6).wait_for()
    first = page.locator(".patients-table tbody th a").first.inner_text()
    assert first == "Tomás Okafor"  # an open critical alert puts the patient first
    assert_accessible(page)
    save_screenshot(page, "patients", tmp_path)

    page.goto(f"{service.base_url}/dashboard/#/patients/{seeded.ids['DEMO-1001']}?range=30d")
    weight = page.locator("[data-chart='body_weight'] svg")
    weight.locator("polyline.avg").wait_for()
    assert weight.locator("path.marker").count() >= 1  # the weight-gain alert marked on its chart
    page.locator("[data-chart='blood_pressure'] svg polyline.avg").first.wait_for()
    assert_accessible(page)
    save_screenshot(page, "patient", tmp_path)

    page.goto(f"{service.base_url}/dashboard/#/patients/{tomas}?range=7d")
    page.locator("[data-chart='spo2'] svg rect.band-critical").first.wait_for()
    assert_accessible(page)
    save_screenshot(page, "patient-copd", tmp_path)

    # the cardiac patient's strips on ECG paper, the newest first
    page.goto(f"{service.base_url}/dashboard/#/patients/{seeded.ids['DEMO-1008']}")
    page.locator("svg.ecg-paper[data-leads='I,II,III,aVR,aVL,aVF']").wait_for()
    assert page.locator("button.ecg-pick").count() >= 29
    assert_accessible(page)
    save_screenshot(page, "patient-ecg", tmp_path)

    page.get_by_role("link", name="Exports").click()
    page.locator(".stat-pending .stat-value").wait_for()
    counts = api.get("/v1/exports").json()["counts"]
    assert counts["pending"] + counts["waiting"] > 1000  # every stored reading queued for the EHR
    assert_accessible(page)
    save_screenshot(page, "exports", tmp_path)
    api.close()


def test_tablet_portrait_layout(page: Any, service: RunningService, tmp_path: Path) -> None:
    seeded = seed_clinic(service.services, ZONE, NOW)
    page.set_viewport_size({"width": 768, "height": 1024})
    sign_in(page, service.base_url, seeded.token)
    page.goto(f"{service.base_url}/dashboard/#/patients/{seeded.ids['DEMO-1003']}")
    page.locator("[data-chart='blood_pressure'] svg").wait_for()
    # Nothing wider than the screen: no sideways scrolling on a tablet.
    assert page.evaluate("document.documentElement.scrollWidth") <= 768
    assert_accessible(page)
    save_screenshot(page, "patient-tablet", tmp_path)

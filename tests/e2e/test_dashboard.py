"""The clinician dashboard in a real browser against the real service (PostgreSQL, Mosquitto,
MQTT consumer, alert engine)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from ingest.settings import Settings
from tests.e2e.helpers import NOW, enrol, iso, post_readings, publish, sign_in
from tests.support.browser import save_screenshot
from tests.support.service import RunningService

pytestmark = pytest.mark.browser


@pytest.fixture
def admin(service: RunningService) -> httpx.Client:
    return service.client(service.token("admin", name="Test Admin"))


def test_nothing_is_visible_before_sign_in(page: Any, service: RunningService) -> None:
    page.goto(service.base_url + "/dashboard/#/patients")
    page.get_by_label("API token").wait_for()
    assert page.locator("#topbar").is_hidden()
    assert page.locator(".patients-table, .alert-list, .chart").count() == 0


def test_a_wrong_token_is_refused(page: Any, service: RunningService, admin: httpx.Client) -> None:
    page.goto(service.base_url + "/")
    field = page.get_by_label("API token")
    field.fill("rpm_this-token-does-not-exist")
    field.press("Enter")  # the form works from the keyboard
    error = page.locator("#signin-error")
    error.filter(has_text="refused").wait_for()
    assert field.get_attribute("aria-invalid") == "true"
    assert page.locator("#topbar").is_hidden()
    assert page.evaluate("sessionStorage.length") == 0

    enrol(admin, "M-DEV", "Device Owner", "OX-DEV")
    field.fill(service.token("device", device="OX-DEV"))
    page.get_by_role("button", name="Sign in").click()
    error.filter(has_text="clinician or admin").wait_for()
    assert page.locator("#topbar").is_hidden()


def test_sign_in_then_sign_out(page: Any, service: RunningService, tmp_path: Path) -> None:
    token = service.token("clinician", clinic="default", name="Nurse Jo")
    sign_in(page, service.base_url, token)
    assert page.locator("#who").inner_text().startswith("Nurse Jo")
    page.locator(".live[data-state='live']").wait_for()
    assert page.evaluate("Object.values(sessionStorage)") == [token]
    page.reload()  # the session survives a reload of the tab
    page.locator("#topbar:not([hidden])").wait_for()
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("API token").wait_for()
    assert page.evaluate("sessionStorage.length") == 0
    assert page.locator("#topbar").is_hidden()


def test_alert_from_an_mqtt_reading_appears_live_and_is_acknowledged(
    page: Any, service: RunningService, settings: Settings, admin: httpx.Client, tmp_path: Path
) -> None:
    patient = enrol(admin, "M-1", "Olive Oximetry", "OX-1")
    sign_in(page, service.base_url, service.token("clinician", clinic="default", name="Nurse Jo"))
    page.locator(".alert-list .empty").wait_for()
    page.locator(".live[data-state='live']").wait_for()
    page.evaluate("window.__notReloaded = true")

    # A desaturation published over MQTT, as a pulse oximeter at home would.
    publish(settings, "OX-1", {"metric": "spo2", "value": 84, "unit": "%", "measured_at": iso(NOW)})

    item = page.locator(".alert-list li.alert-critical").filter(has_text="Olive Oximetry")
    item.wait_for(timeout=20_000)
    assert page.evaluate("window.__notReloaded") is True, "the alert must arrive without a reload"
    assert "Oxygen saturation 84" in item.inner_text()
    assert item.get_attribute("data-status") == "open"
    assert page.locator("#alert-badge").inner_text() == "1"
    assert page.title().startswith("(1)")
    save_screenshot(page, "alert-inbox", tmp_path)

    item.get_by_role("button", name=re.compile("^Acknowledge")).click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Note (optional)").fill("Called the patient; rechecking in 10 minutes.")
    dialog.get_by_role("button", name="Acknowledge").click()
    page.locator(".alert-list li[data-status='acknowledged']").filter(has_text="Olive Oximetry").wait_for()
    assert "rechecking in 10 minutes" in page.locator(".alert-list").inner_text()

    [alert] = admin.get("/v1/alerts", params={"patient_id": patient}).json()["alerts"]
    assert alert["status"] == "acknowledged"
    assert alert["acknowledged_by"] == "Nurse Jo"
    assert alert["acknowledge_note"] == "Called the patient; rechecking in 10 minutes."


def test_patient_charts_render_with_data(
    page: Any, service: RunningService, admin: httpx.Client, tmp_path: Path
) -> None:
    patient = enrol(admin, "M-2", "Harold Heart", "OX-2")

    def hr(value: float, at: Any) -> dict[str, Any]:
        return {"metric": "heart_rate", "value": value, "unit": "/min", "measured_at": iso(at)}

    def spo2(value: float, at: Any) -> dict[str, Any]:
        return {"metric": "spo2", "value": value, "unit": "%", "measured_at": iso(at)}

    readings = []
    for n in range(96):  # every 15 min over the last day
        at = NOW - timedelta(minutes=15 * n + 5)
        readings.append(hr(70 + (n % 12), at))
        if n % 8 == 0:
            readings.append(spo2(96 - (n % 3), at))
    for day in range(1, 21):  # a spot check a day for 20 days
        readings.append(spo2(97, NOW - timedelta(days=day, hours=3)))
    readings.append(hr(142, NOW - timedelta(minutes=1)))  # critical tachycardia
    post_readings(admin, "OX-2", readings)

    sign_in(page, service.base_url, service.token("clinician", clinic="default"))
    page.get_by_role("link", name="Patients").click()
    page.get_by_role("link", name="Harold Heart").click()
    page.get_by_role("heading", name="Harold Heart").wait_for()

    chart = page.locator("[data-chart='heart_rate']")
    chart.locator("svg polyline.avg").wait_for()
    assert int(chart.get_attribute("data-points") or 0) == 97
    points = chart.locator("svg polyline.avg").first.get_attribute("points") or ""
    assert len(points.split()) >= 50
    assert chart.locator("svg rect.band-normal").count() == 1  # the threshold bands are drawn
    chart.locator("svg path.marker-critical").first.wait_for()  # the tachycardia alert is marked
    assert "Heart rate" in (chart.locator("svg").get_attribute("aria-label") or "")

    tile = page.locator(".tile[data-metric='heart_rate']")
    assert "142" in tile.inner_text() and "tile-critical" in (tile.get_attribute("class") or "")
    # days are counted in the browser's time zone (the test context runs in Europe/London)
    london = ZoneInfo("Europe/London")
    today = NOW.astimezone(london).date()
    local_days = {datetime.fromisoformat(r["measured_at"]).astimezone(london).date() for r in readings}
    days = {d for d in local_days if 0 <= (today - d).days < 30}
    assert page.locator("#coverage-count").inner_text().startswith(f"{len(days)}/30")

    chart.locator("svg").focus()  # the values can be read from the keyboard
    page.keyboard.press("End")
    assert "142" in chart.locator(".chart-readout").inner_text()
    save_screenshot(page, "patient", tmp_path)

    page.get_by_role("link", name="30 days").click()
    # the day's chart stays up until the month's readings arrive: wait for the redrawn one
    page.locator("[data-chart='spo2'][data-points='32'] svg polyline.avg").wait_for()
    assert page.url.endswith(f"/dashboard/#/patients/{patient}?range=30d")


def test_a_clinician_sees_only_their_clinic(page: Any, service: RunningService, admin: httpx.Client) -> None:
    assert admin.post("/v1/clinics", json={"id": "north", "name": "North"}).status_code == 201
    enrol(admin, "N-1", "Nora North", "OX-N", clinic="north")
    south = enrol(admin, "S-1", "Sam South", "OX-S")
    sign_in(page, service.base_url, service.token("clinician", clinic="north"))
    page.get_by_role("link", name="Patients").click()
    page.locator(".patients-table tbody tr").first.wait_for()
    names = page.locator(".patients-table tbody th a").all_inner_texts()
    assert names == ["Nora North"]
    page.goto(f"{service.base_url}/dashboard/#/patients/{south}")
    page.get_by_text("does not exist or is not in your clinic").wait_for()
    assert "Sam South" not in page.content()


def test_patient_names_are_shown_as_text_never_markup(
    page: Any, service: RunningService, admin: httpx.Client
) -> None:
    hostile = '<img src=x onerror="window.__pwned=1">Eve'
    enrol(admin, "M-X", hostile, "OX-X")
    sign_in(page, service.base_url, service.token("admin"))
    page.get_by_role("link", name="Patients").click()
    page.get_by_role("link", name=hostile).wait_for()
    assert page.evaluate("window.__pwned") is None
    assert page.locator(".patients-table img").count() == 0


def test_search_filters_the_patients_list(page: Any, service: RunningService, admin: httpx.Client) -> None:
    enrol(admin, "M-A", "Alice Able", "OX-A")
    enrol(admin, "M-B", "Bruno Baker", "OX-B")
    sign_in(page, service.base_url, service.token("admin"))
    page.get_by_role("link", name="Patients").click()
    page.locator(".patients-table tbody tr").nth(1).wait_for()
    page.get_by_label("Search by name or MRN").fill("bruno")
    page.locator(".summary").filter(has_text="matching").wait_for()
    assert page.locator(".patients-table tbody th a").all_inner_texts() == ["Bruno Baker"]

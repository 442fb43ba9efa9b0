"""The ECG viewer on the patient page, in Chromium: strips on standard paper (25 mm/s, 10 mm/mV),
one row per lead, zoom and scroll, the device's interpretation."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from devices.ecg import LEAD_NAMES, strip_to_wire
from devices.ecg_synth import synthetic_strip
from tests.e2e.helpers import NOW, assert_accessible, enrol, sign_in
from tests.support.browser import save_screenshot
from tests.support.service import RunningService

pytestmark = pytest.mark.browser

ZOOM = 3  # px per mm, the viewer's default


def strip(minutes_ago: int, **kwargs: Any) -> dict[str, Any]:
    wire = strip_to_wire(synthetic_strip("ECG-V", NOW - timedelta(minutes=minutes_ago), **kwargs))
    del wire["device_id"]
    return wire


def test_strips_on_paper_with_zoom_scroll_and_interpretation(
    page: Any, service: RunningService, tmp_path: Path
) -> None:
    admin = service.client(service.token("admin"))
    enrol(admin, "M-ECG", "Cora Cardiac", "ECG-V")
    sinus = strip(60, rhythm="sinus", duration_s=30, seed=4)
    af = strip(
        5, rhythm="af", leads=LEAD_NAMES[:6], sample_rate_hz=500, duration_s=10, seed=5, heart_rate_bpm=95
    )
    r = admin.post("/v1/readings", json={"device_id": "ECG-V", "readings": [sinus, af]})
    assert r.status_code == 200 and r.json()["accepted"] == 2, r.text

    sign_in(page, service.base_url, service.token("clinician", clinic="default"))
    page.get_by_role("link", name="Patients").click()
    page.get_by_role("link", name="Cora Cardiac").click()
    page.get_by_role("heading", name="ECG strips").wait_for()
    paper = page.locator("svg.ecg-paper")
    paper.wait_for()

    # the newest strip opens by itself: six leads, one row each, with the device's reading of it
    assert paper.get_attribute("data-leads") == "I,II,III,aVR,aVL,aVF"
    assert paper.locator("polyline.ecg-trace").count() == 6
    assert "atrial fibrillation" in page.locator(".ecg-interpretation").inner_text()
    # 25 mm/s and 10 mm/mV at 3 px/mm: 10 s is 250 mm of paper after the 12 mm margin;
    # each row is 30 mm; the calibration pulse is 1 mV = 10 mm tall
    assert int(paper.get_attribute("width") or 0) == math.ceil((12 + 250 + 2) * ZOOM)
    assert int(paper.get_attribute("height") or 0) == 6 * 30 * ZOOM
    pulse = paper.locator("[data-lead='I'] path.ecg-calibration").get_attribute("d") or ""
    ys = {float(v) for v in pulse.replace("M", "").replace("L", "").split()[1::2]}
    assert max(ys) - min(ys) == pytest.approx(10 * ZOOM)
    # the trace keeps the strip's extremes (min-max decimation): y = baseline - µV/1000 * 10 mm
    points = paper.locator("polyline.ecg-trace[data-lead='II']").get_attribute("points") or ""
    trace_ys = [float(p.split(",")[1]) for p in points.split()]
    baseline = (30 + 15) * ZOOM  # row 2
    peak = max(af["leads"]["II"])
    assert min(trace_ys) == pytest.approx(baseline - peak / 1000 * 10 * ZOOM, abs=0.06)
    grid = paper.locator("rect.ecg-grid")
    assert (grid.get_attribute("fill") or "").startswith("url(#ecg-major-")
    assert page.locator("pattern[id^='ecg-minor-']").first.get_attribute("width") == str(ZOOM)
    save_screenshot(page, "ecg", tmp_path)

    # zoom: 4 px/mm, the paper grows by 4/3
    page.get_by_role("button", name="Zoom in").click()
    page.locator("svg.ecg-paper[data-px-per-mm='4']").wait_for()
    assert int(page.locator("svg.ecg-paper").get_attribute("width") or 0) == math.ceil(264 * 4)
    # "+" zooms from the keyboard too: 6, then 8 px/mm (the largest; "Zoom in" is then disabled)
    scroller = page.locator(".ecg-scroll")
    scroller.focus()
    page.keyboard.press("+")
    page.keyboard.press("+")
    page.locator("svg.ecg-paper[data-px-per-mm='8']").wait_for()
    assert page.get_by_role("button", name="Zoom in").is_disabled()
    # scroll with the keyboard: one second of paper (25 mm = 200 px) per arrow key
    scroller.focus()
    page.keyboard.press("ArrowRight")
    assert scroller.evaluate("el => el.scrollLeft") == 200
    page.keyboard.press("End")
    assert scroller.evaluate("el => el.scrollLeft + el.clientWidth >= el.scrollWidth - 1")
    page.keyboard.press("Home")
    assert scroller.evaluate("el => el.scrollLeft") == 0
    page.keyboard.press("-")
    page.locator("svg.ecg-paper[data-px-per-mm='6']").wait_for()

    # the older strip: one lead, 30 s, sinus rhythm
    page.locator("button.ecg-pick").nth(1).click()
    page.locator("svg.ecg-paper[data-leads='I']").wait_for()
    assert "sinus rhythm" in page.locator(".ecg-interpretation").inner_text()
    assert page.locator("button.ecg-pick").nth(1).get_attribute("aria-pressed") == "true"
    assert_accessible(page)


def test_a_patient_without_strips_shows_no_ecg_section(
    page: Any, service: RunningService, admin: httpx.Client
) -> None:
    patient = enrol(admin, "M-NONE", "Nils None", "OX-NONE")
    sign_in(page, service.base_url, service.token("clinician", clinic="default"))
    page.goto(f"{service.base_url}/dashboard/#/patients/{patient}")
    page.get_by_role("heading", name="Nils None").wait_for()
    page.get_by_role("heading", name="Devices").wait_for()
    assert page.locator(".ecg-section").is_hidden()


@pytest.fixture
def admin(service: RunningService) -> httpx.Client:
    return service.client(service.token("admin"))

"""What a clinician reads in the dashboard: display units (never UCUM codes), one rule for ages,
and charts that draw a min-max band only where a bucket holds a spread of readings."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingest.runtime import default_components
from ingest.settings import Settings
from tests.e2e.helpers import NOW, enrol, iso, post_readings, sign_in
from tests.support.browser import save_screenshot
from tests.support.paths import AGE_CASES
from tests.support.service import RunningService, running_service

pytestmark = pytest.mark.browser

UCUM_CODES = re.compile(r"mm\[Hg\]|\bCel\b|\[lb_av\]|\{steps\}")


@pytest.fixture
def service(settings: Settings) -> Iterator[RunningService]:
    """The whole service, its scheduler ticking every second (missing data opens promptly)."""
    fast = settings.model_copy(update={"alert_scheduler_interval_s": 1.0})
    with running_service(fast, factories=default_components()) as svc:
        yield svc


@pytest.fixture
def admin(service: RunningService) -> httpx.Client:
    return service.client(service.token("admin", name="Test Admin"))


def value(metric: str, v: float, unit: str, at: datetime) -> dict[str, Any]:
    return {"metric": metric, "value": v, "unit": unit, "measured_at": iso(at)}


def open_patient(page: Any, service: RunningService, patient: str, range_: str = "24h") -> None:
    page.goto(f"{service.base_url}/dashboard/#/patients/{patient}?range={range_}")
    page.locator(".tiles").wait_for()


def test_people_read_display_units_never_ucum_codes(
    page: Any, service: RunningService, admin: httpx.Client, tmp_path: Path
) -> None:
    patient = enrol(admin, "U-1", "Una Units", "CUFF-U")
    at = NOW - timedelta(minutes=5)
    post_readings(
        admin,
        "CUFF-U",
        [
            value("systolic_bp", 185, "mm[Hg]", at),
            value("diastolic_bp", 95, "mm[Hg]", at),
            value("heart_rate", 72, "/min", at),
            value("body_temperature", 38.2, "Cel", at),
            value("spo2", 96, "%", at),
        ],
    )
    [*alerts] = admin.get("/v1/alerts", params={"patient_id": patient}).json()["alerts"]
    assert alerts and all(not UCUM_CODES.search(a["message"]) for a in alerts)
    assert {a["unit"] for a in alerts} <= {"mm[Hg]", "Cel"}  # the data keeps UCUM

    sign_in(page, service.base_url, service.token("clinician", clinic="default"))
    # The inbox: the fever and the pressure in °C and mmHg.
    items = page.locator(".alert-list li").filter(has_text="Una Units")
    items.filter(has_text="38.2 °C").first.wait_for()
    items.filter(has_text=re.compile(r"185(/95)? mmHg")).first.wait_for()  # one alert per BP measurement
    inbox = page.locator("main").inner_text()
    assert not UCUM_CODES.search(inbox), inbox
    save_screenshot(page, "readable-inbox", tmp_path)

    # The patients list: BP with its unit.
    page.get_by_role("link", name="Patients").click()
    row = page.locator(".patients-table tbody tr").filter(has_text="Una Units")
    row.wait_for()
    text = row.inner_text()
    assert "185/95 mmHg" in text and "72 bpm" in text and "38.2 °C" in text, text
    assert not UCUM_CODES.search(text), text

    # The patient page: tiles, chart descriptions, alert history.
    open_patient(page, service, patient)
    tiles = {t.get_attribute("data-metric"): t.inner_text() for t in page.locator(".tile").all()}
    assert "185/95 mmHg" in tiles["blood_pressure"]
    assert "38.2 °C" in tiles["body_temperature"]
    assert "72 bpm" in tiles["heart_rate"]
    assert "96 %" in tiles["spo2"]
    page.locator("[data-chart='heart_rate'] svg").wait_for()
    labels = " ".join(svg.get_attribute("aria-label") or "" for svg in page.locator("svg.chart").all())
    assert "bpm" in labels and "mmHg" in labels and "°C" in labels
    assert not UCUM_CODES.search(page.locator("main").inner_text() + labels)
    save_screenshot(page, "readable-patient", tmp_path)


def test_format_js_ages_follow_the_same_table_as_python(page: Any, service: RunningService) -> None:
    # The cases devices.display.age_text is tested against (tests/devices/test_display.py).
    cases = json.loads(AGE_CASES.read_text(encoding="utf-8"))["cases"]
    sign_in(page, service.base_url, service.token("clinician", clinic="default"))
    got = page.evaluate(
        """async (cases) => {
          const f = await import("/dashboard/js/format.js");
          const now = 1.8e12;
          return cases.map((c) => [f.ageText(c.seconds), f.ago(new Date(now - c.seconds * 1000), now)]);
        }""",
        cases,
    )
    assert got == [[c["age"], c["ago"]] for c in cases]


def test_the_patients_list_and_the_alert_say_the_same_age(
    page: Any, service: RunningService, admin: httpx.Client, tmp_path: Path
) -> None:
    # 3.6 days without a weight: the alert (opened by the scheduler) and the list agree.
    enrol(admin, "W-1", "Wanda Weight", "SCALE-W")
    post_readings(admin, "SCALE-W", [value("body_weight", 82.4, "kg", NOW - timedelta(days=3.6))])
    sign_in(page, service.base_url, service.token("clinician", clinic="default"))
    item = page.locator(".alert-list li").filter(has_text="Wanda Weight").filter(has_text="No weight reading")
    item.wait_for(timeout=20_000)
    found = re.search(r"No weight reading for (\d+ (?:min|h|d))", item.inner_text())
    assert found, item.inner_text()
    assert found.group(1) == "4 d"  # 3.6 d rounds up: data never reads fresher than it is

    page.get_by_role("link", name="Patients").click()
    row = page.locator(".patients-table tbody tr").filter(has_text="Wanda Weight")
    row.wait_for()
    assert row.locator("time").first.inner_text() == f"{found.group(1)} ago"
    save_screenshot(page, "readable-ages", tmp_path)


# --------------------------------------------------------------------------- charts

_BANDS_JS = """
(chart) => {
  const xy = (s) => s.trim().split(/\\s+/).map((p) => p.split(",").map(Number));
  const out = { polygons: [], whiskers: [] };
  for (const poly of chart.querySelectorAll("svg .series polygon.range")) {
    const pts = xy(poly.getAttribute("points"));
    const n = pts.length / 2;
    const upper = pts.slice(0, n);
    const lower = pts.slice(n).reverse();
    out.polygons.push(upper.map((u, i) => ({ x: u[0], top: u[1], lx: lower[i][0], bottom: lower[i][1] })));
  }
  for (const w of chart.querySelectorAll("svg .series line.range-whisker")) {
    out.whiskers.push({ top: Number(w.getAttribute("y1")), bottom: Number(w.getAttribute("y2")) });
  }
  return out;
}
"""


def bands(page: Any, chart: str) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = page.locator(f"[data-chart='{chart}']").evaluate(_BANDS_JS)
    return found


def assert_bands_only_over_spreads(found: dict[str, list[Any]]) -> None:
    """Every vertex of a band is a bucket whose max is above its min (never a single reading)."""
    for polygon in found["polygons"]:
        assert len(polygon) >= 2
        for vertex in polygon:
            assert vertex["x"] == vertex["lx"]
            assert vertex["bottom"] > vertex["top"], f"a band narrows to a single reading: {polygon}"
    for whisker in found["whiskers"]:
        assert whisker["bottom"] > whisker["top"]


@pytest.fixture
def chart_patients(admin: httpx.Client) -> dict[str, str]:
    """A sparse patient (one check a day; a repeated measurement in the newest hour) and a dense
    one (heart rate every 5 minutes for 30 days)."""
    sparse = enrol(admin, "C-1", "Sam Sparse", "CUFF-C1")
    readings = []
    for day in range(1, 30):
        at = NOW - timedelta(days=day, hours=3)
        readings.append(value("heart_rate", 64 + day % 7, "/min", at))
        readings.append(value("systolic_bp", 128 + day % 9, "mm[Hg]", at))
        readings.append(value("diastolic_bp", 80 + day % 5, "mm[Hg]", at))
    for minutes, hr, sys in ((50, 70, 132), (49, 84, 141), (48, 77, 137)):  # repeated in the newest hour
        at = NOW - timedelta(minutes=minutes)
        readings += [value("heart_rate", hr, "/min", at), value("systolic_bp", sys, "mm[Hg]", at)]
        readings.append(value("diastolic_bp", 84, "mm[Hg]", at))
    post_readings(admin, "CUFF-C1", readings)

    dense = enrol(admin, "C-2", "Dana Dense", "STRAP-C2")
    step, offset = timedelta(minutes=5), timedelta(seconds=30)
    beats = [value("heart_rate", 62 + (n * 7) % 23, "/min", NOW - step * n - offset) for n in range(30 * 288)]
    post_readings(admin, "STRAP-C2", beats)
    return {"sparse": sparse, "dense": dense}


@pytest.mark.parametrize("range_", ["24h", "7d", "30d"])
def test_charts_draw_bands_only_where_buckets_spread(
    page: Any, service: RunningService, chart_patients: dict[str, str], range_: str, tmp_path: Path
) -> None:
    sign_in(page, service.base_url, service.token("clinician", clinic="default"))

    open_patient(page, service, chart_patients["sparse"], range_)
    page.locator("[data-chart='heart_rate'] svg .series").wait_for()
    page.locator("[data-chart='blood_pressure'] svg .series").first.wait_for()
    for chart in ("heart_rate", "blood_pressure"):
        found = bands(page, chart)
        assert_bands_only_over_spreads(found)
        if range_ != "24h":
            # the history is one reading per bucket: no band at all, the repeats a whisker
            assert found["polygons"] == [], found
            assert found["whiskers"], found
    save_screenshot(page, f"chart-sparse-{range_}", tmp_path)

    open_patient(page, service, chart_patients["dense"], range_)
    page.locator("[data-chart='heart_rate'] svg polyline.avg").wait_for()
    found = bands(page, "heart_rate")
    assert_bands_only_over_spreads(found)
    assert found["polygons"], "dense data draws its min-max band"
    save_screenshot(page, f"chart-dense-{range_}", tmp_path)

"""The billing parts of the dashboard in Chromium: the review timer on the patient page (start,
pause, survives a reload, warns when left running, stop and log with the interactive box and a
note, delete) and the billing page (the month's table, progress, filters, the CSV download)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import NOW, assert_accessible, iso, sign_in
from tests.support.browser import save_screenshot
from tests.support.service import RunningService
from tests.support.waiting import wait_until

pytestmark = pytest.mark.browser


def _patient(admin: httpx.Client, mrn: str, name: str, device: str, since: datetime) -> str:
    r = admin.post("/v1/patients", json={"mrn": mrn, "display_name": name})
    assert r.status_code == 201, r.text
    pid: str = r.json()["id"]
    assert admin.post("/v1/devices", json={"id": device, "type": "pulse_oximeter"}).status_code == 201
    r = admin.put(f"/v1/devices/{device}/assignment", json={"patient_id": pid, "since": iso(since)})
    assert r.status_code == 200, r.text
    return pid


def _readings(admin: httpx.Client, device: str, first: date, days: int) -> None:
    readings = [
        {
            "metric": "heart_rate",
            "value": 70,
            "unit": "/min",
            "measured_at": f"{first + timedelta(days=n)}T12:00:00Z",
        }
        for n in range(days)
    ]
    r = admin.post("/v1/readings", json={"device_id": device, "readings": readings})
    assert r.status_code == 200 and r.json()["accepted"] == days, r.text


def _a_past_31_day_month() -> date:
    """The first day of the latest month with 31 days that ended at least a month ago."""
    d = (NOW.date().replace(day=1) - timedelta(days=40)).replace(day=1)
    while ((d.replace(day=28) + timedelta(days=4)).replace(day=1) - d).days != 31:
        d = (d - timedelta(days=1)).replace(day=1)
    return d


def test_review_timer(page: Any, service: RunningService, tmp_path: Path) -> None:
    admin = service.client(service.token("admin"))
    pid = _patient(admin, "T-1", "Tess Timer", "OX-T", NOW - timedelta(days=3))
    _readings(admin, "OX-T", (NOW - timedelta(days=2)).date(), 2)
    sign_in(page, service.base_url, service.token("clinician", clinic="default", name="Dr Who"))
    page.goto(f"{service.base_url}/dashboard/#/patients/{pid}")
    panel = page.locator("section.billing-panel")
    panel.wait_for()
    clock = page.locator("#timer-clock")
    assert clock.inner_text() == "00:00" and clock.get_attribute("data-state") == "idle"

    # start; the clock runs and keeps running across a reload
    page.get_by_role("button", name="Start").click()
    wait_until(lambda: clock.inner_text() >= "00:02", 15, "the timer to run")
    assert clock.get_attribute("data-state") == "running"
    page.reload()
    page.locator("#timer-clock[data-state='running']").wait_for()
    assert clock.inner_text() >= "00:02"
    warning = page.locator("#timer-warning")
    assert warning.get_attribute("data-kind") == "left" and "left running" in warning.inner_text()

    # pause: the clock stands still; the interactive box is kept with the timer
    page.get_by_role("button", name="Pause").click()
    page.locator("#timer-clock[data-state='paused']").wait_for()
    assert warning.is_hidden()
    shown = clock.inner_text()
    page.wait_for_timeout(1500)
    assert clock.inner_text() == shown
    page.get_by_label("Interactive communication", exact=True).check()
    page.reload()
    page.locator("#timer-clock[data-state='paused']").wait_for()
    assert page.get_by_label("Interactive communication", exact=True).is_checked()
    assert page.get_by_role("button", name="Resume").is_visible()

    # stop and log: minutes prefilled from the timer (at least 1), edited to 12, with a note
    page.get_by_role("button", name="Stop and log").click()
    form = page.locator("#time-form")
    form.wait_for()
    assert page.locator("#time-minutes").input_value() == "1"
    assert page.locator("#time-interactive").is_checked()
    page.locator("#time-minutes").fill("500")
    form.get_by_role("button", name="Log time").click()
    assert "1 to 240" in form.locator(".form-error").inner_text()
    page.locator("#time-minutes").fill("12")
    page.get_by_label("Note (optional)").fill("Called about swollen ankles")
    form.get_by_role("button", name="Log time").click()
    page.locator(".entry").first.wait_for()
    assert clock.get_attribute("data-state") == "idle"
    assert page.evaluate(f"sessionStorage.getItem('rpm.billing.timer.v1.{pid}')") is None
    entry = page.locator(".entry").first.inner_text()
    assert (
        "12 min" in entry
        and "interactive" in entry.lower()
        and "Dr Who" in entry
        and "swollen ankles" in entry
    )
    page.locator("#billing-minutes", has_text="12").wait_for()
    assert "8 more minutes for 99457" in page.locator("#billing-progress").inner_text()
    assert "2 days" in page.locator("#billing-days").inner_text()
    body = admin.get(f"/v1/patients/{pid}/time").json()
    assert [(e["minutes"], e["interactive"], e["note"], e["clinician"]) for e in body["entries"]] == [
        (12, True, "Called about swollen ankles", "Dr Who")
    ]
    save_screenshot(page, "billing-timer", tmp_path)

    # a timer left running for 45 minutes says so
    started = "Date.now() - 45 * 60 * 1000"
    page.evaluate(
        f"sessionStorage.setItem('rpm.billing.timer.v1.{pid}',"
        f" JSON.stringify({{bankedMs: 0, startedAt: {started}, interactive: false}}))"
    )
    page.reload()
    page.locator("#timer-warning[data-kind='long']").wait_for()
    assert "running for 45 minutes" in page.locator("#timer-warning").inner_text()
    page.get_by_role("button", name="Stop and log").click()
    assert page.locator("#time-minutes").input_value() == "45"
    page.get_by_role("button", name="Discard the timer").click()
    page.locator("#timer-clock[data-state='idle']").wait_for()

    # the author deletes the entry (after confirming)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete 12 minutes logged by Dr Who").click()
    page.get_by_text("No time logged this month.").wait_for()
    assert admin.get(f"/v1/patients/{pid}/time").json()["entries"] == []
    admin.close()


def test_billing_page(page: Any, service: RunningService, tmp_path: Path) -> None:
    admin = service.client(service.token("admin"))
    first = _a_past_31_day_month()
    month = first.strftime("%Y-%m")
    start = datetime(first.year, first.month, 1, 8, tzinfo=NOW.tzinfo)
    ann = _patient(admin, "B-1", "Ann Able", "OX-A", start)
    bob = _patient(admin, "B-2", "Bob =Baker", "OX-B", start)
    _readings(admin, "OX-A", first, 16)
    _readings(admin, "OX-B", first + timedelta(days=3), 3)
    performed = iso(start + timedelta(days=5))
    for pid, minutes, interactive in ((ann, 45, True), (bob, 12, False)):
        r = admin.post(
            f"/v1/patients/{pid}/time",
            json={"minutes": minutes, "interactive": interactive, "performed_at": performed},
        )
        assert r.status_code == 201, r.text

    sign_in(page, service.base_url, service.token("clinician", clinic="default"))
    page.get_by_role("link", name="Billing").click()
    page.get_by_role("heading", name="Billing", level=1).wait_for()
    page.locator("#billing-month").fill(month)
    page.locator("#billing-month").dispatch_event("change")
    page.locator(f"text=monitored in {month}").wait_for()
    rows = page.locator("table.billing-table tbody tr")
    assert rows.count() == 2
    row_a = page.locator("tr[data-mrn='B-1']")
    row_b = page.locator("tr[data-mrn='B-2']")
    assert row_a.locator(".code-chip").all_inner_texts() == ["99453", "99454", "99457", "99458"]
    assert row_b.locator(".code-chip").all_inner_texts() == ["99453", "99445"]
    assert "16 days" in row_a.locator(".billing-periods").inner_text()
    assert "3 days" in row_b.locator(".billing-periods").inner_text()
    progress_b = row_b.locator(".billing-progress").inner_text()
    assert "13 more days for 99454" in progress_b and "an interactive communication for 99470" in progress_b
    assert "15 more minutes for 99458" in row_a.locator(".billing-progress").inner_text()
    assert page.locator(".stat[data-code='99453'] .stat-value").inner_text() == "2"
    assert_accessible(page)
    save_screenshot(page, "billing", tmp_path)

    # filters: a code, then a search
    page.get_by_label("Show").select_option("99454")
    assert rows.count() == 1 and rows.first.get_attribute("data-mrn") == "B-1"
    page.get_by_label("Show").select_option("all")
    page.get_by_label("Search").fill("baker")
    assert rows.count() == 1 and rows.first.get_attribute("data-mrn") == "B-2"

    # the CSV download is the service's CSV for the month
    with page.expect_download() as info:
        page.get_by_role("button", name="Download CSV").click()
    download = info.value
    assert download.suggested_filename == f"rpm-billing-default-{month}.csv"
    expected = admin.get(
        "/v1/billing", params={"month": month, "clinic": "default"}, headers={"Accept": "text/csv"}
    ).text
    got = Path(download.path()).read_bytes().decode("utf-8")
    assert got == expected
    assert (
        got.splitlines()[0]
        == "mrn,display_name,code,units,period_start,period_end,days_with_readings,management_minutes"
    )
    assert "B-2,'=Baker" not in got and "B-2,Bob =Baker,99445,1" in got
    admin.close()

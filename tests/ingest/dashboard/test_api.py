"""The dashboard's summary API: latest vitals, days with readings, attention order, tenancy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from devices.display import load_display
from ingest.dashboard.queries import day_window
from tests.support.service import RunningService

NOW = datetime.now(UTC).replace(microsecond=0)


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def reading(metric: str, value: float, unit: str, at: datetime) -> dict[str, Any]:
    return {"metric": metric, "value": value, "unit": unit, "measured_at": iso(at)}


def enrol(client: httpx.Client, mrn: str, name: str, device: str, clinic: str = "default") -> str:
    r = client.post("/v1/patients", json={"mrn": mrn, "display_name": name, "clinic": clinic})
    assert r.status_code == 201, r.text
    patient_id: str = r.json()["id"]
    r = client.post("/v1/devices", json={"id": device, "type": "monitor", "clinic": clinic})
    assert r.status_code == 201, r.text
    r = client.put(f"/v1/devices/{device}/assignment",
                   json={"patient_id": patient_id, "since": iso(NOW - timedelta(days=60))})
    assert r.status_code == 200, r.text
    return patient_id


def post(client: httpx.Client, device: str, *readings: dict[str, Any]) -> None:
    r = client.post("/v1/readings", json={"device_id": device, "readings": list(readings)})
    assert r.status_code == 200 and not r.json()["rejected"], r.text


@pytest.fixture
def admin(dashboard: RunningService) -> httpx.Client:
    return dashboard.client(dashboard.token("admin", name="Dr Admin"))


def test_me_tells_who_signed_in(dashboard: RunningService, admin: httpx.Client) -> None:
    assert admin.get("/v1/dashboard/me").json() == {"name": "Dr Admin", "role": "admin", "clinic": None}
    with dashboard.client(dashboard.token("clinician", clinic="default", name="Nurse")) as c:
        assert c.get("/v1/dashboard/me").json() == {"name": "Nurse", "role": "clinician", "clinic": "default"}


def test_metrics_serve_the_display_table(dashboard: RunningService, admin: httpx.Client) -> None:
    # The dashboard formats every value with this answer: one table, no copy in JavaScript.
    page = admin.get("/v1/dashboard/metrics").json()
    by = {m["metric"]: m for m in page["metrics"]}
    assert [m["metric"] for m in page["metrics"]] == list(load_display())  # presentation order
    assert (by["systolic_bp"]["unit"], by["systolic_bp"]["ucum_unit"]) == ("mmHg", "mm[Hg]")
    assert (by["body_temperature"]["unit"], by["body_temperature"]["digits"]) == ("°C", 1)
    assert by["heart_rate"]["unit"] == "bpm" and by["spo2"]["short"] == "SpO₂"
    assert page["units"]["mm[Hg]"] == "mmHg" and "/min" not in page["units"]
    with dashboard.client() as anonymous:
        assert anonymous.get("/v1/dashboard/metrics").status_code == 401


def test_me_refuses_missing_wrong_and_device_tokens(dashboard: RunningService, admin: httpx.Client) -> None:
    enrol(admin, "M1", "Pat One", "DEV-1")
    with dashboard.client() as anonymous:
        assert anonymous.get("/v1/dashboard/me").status_code == 401
    for bad in ("rpm_wrong", "not-even-prefixed", "rpm_" + "x" * 500, "rpm_' OR 1=1 --"):
        with dashboard.client(bad) as c:
            r = c.get("/v1/dashboard/me")
            assert r.status_code == 401, bad
            assert "invalid" in r.json()["detail"]
    with dashboard.client(dashboard.token("device", device="DEV-1")) as device:
        assert device.get("/v1/dashboard/me").status_code == 403
        assert device.get("/v1/dashboard/patients").status_code == 403


def test_summary_has_latest_values_coverage_and_last_reading(admin: httpx.Client) -> None:
    patient = enrol(admin, "M1", "Pat One", "DEV-1")
    days_ago = [1, 2, 2, 5, 29, 31, 45]  # 31 and 45 fall outside the 30-day window
    for n, back in enumerate(days_ago):
        post(admin, "DEV-1", reading("heart_rate", 60 + n, "/min", NOW - timedelta(days=back, minutes=n)))
    post(admin, "DEV-1",
         reading("systolic_bp", 131, "mm[Hg]", NOW - timedelta(hours=3)),
         reading("diastolic_bp", 85, "mm[Hg]", NOW - timedelta(hours=3)),
         reading("body_weight", 176.0, "[lb_av]", NOW - timedelta(hours=2)))

    page = admin.get("/v1/dashboard/patients").json()["patients"]
    [summary] = page
    assert summary["id"] == patient and summary["mrn"] == "M1" and summary["display_name"] == "Pat One"
    latest = {v["metric"]: v for v in summary["latest"]}
    assert set(latest) == {"heart_rate", "systolic_bp", "diastolic_bp", "body_weight"}
    assert latest["heart_rate"]["value"] == 60  # the newest heart rate, one day ago
    assert latest["body_weight"]["value"] == pytest.approx(79.83, abs=0.01)  # converted to kg
    assert latest["body_weight"]["unit"] == "kg"
    assert datetime.fromisoformat(summary["last_reading_at"]) == NOW - timedelta(hours=2)
    # UTC calendar days of the last 30 (today included) holding a reading
    stamps = [NOW - timedelta(days=d, minutes=n) for n, d in enumerate(days_ago)]
    stamps += [NOW - timedelta(hours=3), NOW - timedelta(hours=2)]
    expected = len({t.date() for t in stamps if 0 <= (NOW.date() - t.date()).days < 30})
    assert summary["days_with_readings_30d"] == expected
    assert summary["open_alerts"] == {"critical": 0, "warning": 0, "total": 0}
    assert summary["attention"] == []

    detail = admin.get(f"/v1/dashboard/patients/{patient}").json()
    assert detail["days_with_readings_30d"] == expected == len(detail["coverage_days"])
    assert detail["time_zone"] == "UTC"
    [device] = detail["devices"]
    assert device["id"] == "DEV-1"
    assert datetime.fromisoformat(device["last_reading_at"]) == NOW - timedelta(hours=2)
    assert device["last_seen_at"] is not None


def test_days_are_counted_in_the_callers_time_zone(admin: httpx.Client) -> None:
    patient = enrol(admin, "M1", "Pat One", "DEV-1")
    # 23:30 and 00:30 UTC five days ago: two UTC days, one day in Tokyo (UTC+9).
    midnight = datetime.combine((NOW - timedelta(days=5)).date(), datetime.min.time(), tzinfo=UTC)
    post(admin, "DEV-1",
         reading("heart_rate", 70, "/min", midnight - timedelta(minutes=30)),
         reading("heart_rate", 71, "/min", midnight + timedelta(minutes=30)))
    utc = admin.get(f"/v1/dashboard/patients/{patient}").json()
    tokyo = admin.get(f"/v1/dashboard/patients/{patient}", params={"tz": "Asia/Tokyo"}).json()
    assert utc["days_with_readings_30d"] == 2
    assert tokyo["days_with_readings_30d"] == 1
    assert tokyo["time_zone"] == "Asia/Tokyo"


def test_day_window_follows_daylight_saving() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    window = day_window(datetime(2026, 3, 30, 12, tzinfo=UTC), berlin, count=3)
    lengths = [(e.astimezone(UTC) - s.astimezone(UTC)) / timedelta(hours=1)
               for s, e in zip(window.starts, window.ends, strict=True)]
    assert [str(d) for d in window.days] == ["2026-03-28", "2026-03-29", "2026-03-30"]
    assert lengths == [24, 23, 24]  # clocks went forward on 29 March
    with pytest.raises(ValueError):
        day_window(datetime(2026, 3, 30, 12), berlin)


def test_patients_needing_attention_come_first(admin: httpx.Client) -> None:
    fresh = enrol(admin, "M1", "Anna Fresh", "DEV-1")
    silent = enrol(admin, "M2", "Bert Silent", "DEV-2")
    never = enrol(admin, "M3", "Carl Never", "DEV-3")
    older = enrol(admin, "M4", "Dora Older", "DEV-4")
    post(admin, "DEV-1", reading("heart_rate", 70, "/min", NOW - timedelta(minutes=10)))
    post(admin, "DEV-2", reading("heart_rate", 70, "/min", NOW - timedelta(days=2)))
    post(admin, "DEV-4", reading("heart_rate", 70, "/min", NOW - timedelta(days=6)))
    page = admin.get("/v1/dashboard/patients").json()["patients"]
    assert [p["id"] for p in page] == [never, older, silent, fresh]
    reasons = {p["id"]: p["attention"] for p in page}
    assert reasons[never] == ["no readings yet"]
    assert reasons[silent] == ["no reading for over 24 h"]
    assert reasons[fresh] == []


def test_search_by_name_or_mrn(admin: httpx.Client) -> None:
    enrol(admin, "MRN-77", "Zoe Search", "DEV-1")
    enrol(admin, "MRN-78", "Other Person", "DEV-2")

    def names(q: str) -> list[str]:
        page = admin.get("/v1/dashboard/patients", params={"q": q}).json()["patients"]
        return [p["display_name"] for p in page]

    assert names("zoe") == ["Zoe Search"]
    assert names("MRN-78") == ["Other Person"]
    assert names("%") == [] and names("_") == [] and names("' OR ''='") == []
    assert len(names("  ")) == 2  # blank search = everyone


def test_clinicians_see_only_their_clinic(dashboard: RunningService, admin: httpx.Client) -> None:
    assert admin.post("/v1/clinics", json={"id": "north", "name": "North"}).status_code == 201
    assert admin.post("/v1/clinics", json={"id": "south", "name": "South"}).status_code == 201
    north = enrol(admin, "N1", "North Patient", "DEV-N", clinic="north")
    south = enrol(admin, "S1", "South Patient", "DEV-S", clinic="south")
    post(admin, "DEV-S", reading("heart_rate", 70, "/min", NOW - timedelta(minutes=5)))
    with dashboard.client(dashboard.token("clinician", clinic="north")) as c:
        page = c.get("/v1/dashboard/patients").json()["patients"]
        assert [p["id"] for p in page] == [north]
        assert c.get("/v1/dashboard/patients", params={"q": "South"}).json()["patients"] == []
        r = c.get(f"/v1/dashboard/patients/{south}")
        assert r.status_code == 404
        assert "South" not in r.text
        assert c.get(f"/v1/dashboard/patients/{north}").status_code == 200
    assert {p["id"] for p in admin.get("/v1/dashboard/patients").json()["patients"]} == {north, south}


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/dashboard/patients", {"tz": "Mars/Olympus_Mons"}),
        ("/v1/dashboard/patients", {"tz": "../../etc/localtime"}),
        ("/v1/dashboard/patients", {"tz": "x" * 65}),
        ("/v1/dashboard/patients", {"tz": ""}),
        ("/v1/dashboard/patients", {"q": "x" * 201}),
        ("/v1/dashboard/patients", {"limit": "0"}),
        ("/v1/dashboard/patients", {"limit": "100000"}),
        ("/v1/dashboard/patients", {"limit": "ten"}),
        ("/v1/dashboard/patients/not-a-uuid", {}),
        ("/v1/dashboard/patients/00000000-0000-0000-0000-000000000000", {"tz": "Nowhere/Land"}),
    ],
)
def test_bad_parameters_are_refused_cleanly(admin: httpx.Client, path: str, params: dict[str, str]) -> None:
    r = admin.get(path, params=params)
    assert r.status_code == 422, r.text
    assert "detail" in r.json()


def test_unknown_patient_is_404(admin: httpx.Client) -> None:
    r = admin.get("/v1/dashboard/patients/00000000-0000-0000-0000-000000000000")
    assert r.status_code == 404


def test_open_alerts_are_counted_and_put_patients_first(dashboard_with_alerts: RunningService) -> None:
    svc = dashboard_with_alerts
    with svc.client(svc.token("admin")) as api:
        calm = enrol(api, "M1", "Anna Calm", "DEV-1")
        warned = enrol(api, "M2", "Bert Warned", "DEV-2")
        critical = enrol(api, "M3", "Cora Critical", "DEV-3")
        post(api, "DEV-1", reading("spo2", 97, "%", NOW - timedelta(minutes=9)))
        # two readings below 92 % (the default rule wants two in a row for a warning)
        post(api, "DEV-2", reading("spo2", 91, "%", NOW - timedelta(minutes=9)),
             reading("spo2", 90, "%", NOW - timedelta(minutes=8)))
        post(api, "DEV-3", reading("spo2", 82, "%", NOW - timedelta(minutes=7)))

        page = api.get("/v1/dashboard/patients").json()["patients"]
        assert [p["id"] for p in page] == [critical, warned, calm]
        counts = {p["id"]: p["open_alerts"] for p in page}
        assert counts[critical] == {"critical": 1, "warning": 0, "total": 1}
        assert counts[warned] == {"critical": 0, "warning": 1, "total": 1}
        assert page[0]["attention"] == ["1 critical alert open"]
        assert page[1]["attention"] == ["1 warning open"]

        # Acknowledged still needs attention; resolved does not.
        [alert] = api.get("/v1/alerts", params={"patient_id": critical}).json()["alerts"]
        assert api.post(f"/v1/alerts/{alert['id']}/acknowledge", json={"note": "seen"}).status_code == 200
        detail = api.get(f"/v1/dashboard/patients/{critical}").json()
        assert detail["open_alerts"]["critical"] == 1
        assert api.post(f"/v1/alerts/{alert['id']}/resolve", json={}).status_code == 200
        detail = api.get(f"/v1/dashboard/patients/{critical}").json()
        assert detail["open_alerts"] == {"critical": 0, "warning": 0, "total": 0}

"""ECG strips over HTTP: the same endpoint, pipeline, identity, dead letters and size limits."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import pytest

from devices.ecg import LEAD_NAMES
from ingest.ecg.store import load_strip
from tests.support.ecg import (
    at,
    dead_letter_rows,
    iso,
    register_cardiac,
    stored_strips,
    wire_strip,
)
from tests.support.service import RunningService


@pytest.fixture
def admin(service: RunningService) -> httpx.Client:
    return service.client(service.token("admin"))


def post(client: httpx.Client, device_id: str, *readings: dict[str, Any]) -> httpx.Response:
    return client.post("/v1/readings", json={"device_id": device_id, "readings": list(readings)})


def test_a_strip_is_stored_once_beside_the_readings_of_its_message(
    service: RunningService, admin: httpx.Client
) -> None:
    with service.services.transaction() as conn:
        register_cardiac(conn, "KARDIA-1")
    strip = wire_strip("KARDIA-1", 5, interpretation="sinus_rhythm")
    hr = {"metric": "heart_rate", "value": 64, "unit": "/min", "measured_at": iso(at(5))}
    r = post(admin, "KARDIA-1", strip, hr)
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    again = post(admin, "KARDIA-1", strip)
    assert again.json() == {"accepted": 0, "duplicates": 1, "rejected": []}
    with service.services.transaction() as conn:
        rows = stored_strips(conn)
        [(device, measured, leads, count)] = rows
        loaded = load_strip(conn, conn.execute("SELECT id FROM ecg_strips").fetchone()[0])  # type: ignore[index]
    assert (device, measured, leads, count) == ("KARDIA-1", at(5), ["I"], 3000)
    assert loaded is not None
    assert loaded.strip.leads["I"].tolist() == strip["leads"]["I"]
    assert loaded.strip.interpretation == "sinus_rhythm"


def test_sixty_seconds_of_six_leads_at_500_hz_in_millivolts_is_accepted(
    service: RunningService, admin: httpx.Client
) -> None:
    with service.services.transaction() as conn:
        register_cardiac(conn, "KARDIA-6L")
    strip = wire_strip("KARDIA-6L", 3, leads=LEAD_NAMES[:6], rate=500, seconds=60)
    strip["unit"] = "mV"
    strip["leads"] = {k: [v / 1000 for v in vs] for k, vs in strip["leads"].items()}
    body = json.dumps({"device_id": "KARDIA-6L", "readings": [strip]}).encode()
    assert 1024 * 1024 < len(body) < 4 * 1024 * 1024  # over the ordinary body limit
    r = admin.post("/v1/readings", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    with service.services.transaction() as conn:
        [(_, _, leads, count)] = stored_strips(conn)
    assert leads == list(LEAD_NAMES[:6]) and count == 30_000


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("unequal lead lengths", {"leads": {"I": [1, 2, 3], "II": [1, 2]}}, "unequal lengths"),
    ("unknown lead name", {"leads": {"I": [1], "V7": [1]}}, "unknown lead name(s) 'V7'"),
    ("rate too low", {"sample_rate_hz": 50}, "sample_rate_hz 50 is out of range"),
    ("rate too high", {"sample_rate_hz": 2000}, "sample_rate_hz 2000 is out of range"),
    ("too long", {"sample_rate_hz": 100, "leads": {"I": [0] * 6001}}, "at most 60 s"),
    ("non-integer sample", {"leads": {"I": [1, 2.5, 3]}}, "not an integer"),
    ("string sample", {"leads": {"I": [1, "2", 3]}}, "a string, not a number"),
    ("unknown unit", {"unit": "V"}, "ECG unit 'V' is not supported"),
    ("no leads", {"leads": {}}, "1 to 12 leads"),
    ("out-of-range sample", {"leads": {"I": [40000]}}, "outside ±32767"),
    ("no time", {"measured_at": None}, "measured_at"),
    ("future", {"measured_at": iso(at(-60))}, "in the future"),
]


def test_every_bad_strip_is_dead_lettered_with_its_reason_and_the_good_ones_stored(
    service: RunningService, admin: httpx.Client
) -> None:
    with service.services.transaction() as conn:
        register_cardiac(conn, "KARDIA-2")
    good_before = wire_strip("KARDIA-2", 30)
    good_after = wire_strip("KARDIA-2", 29)
    bad = [{**wire_strip("KARDIA-2", 20 - i, seconds=1), **change} for i, (_, change, _) in enumerate(BAD)]
    r = post(admin, "KARDIA-2", good_before, *bad, good_after)
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["accepted"] == 2
    reasons = {item["index"]: item["reason"] for item in result["rejected"]}
    assert sorted(reasons) == list(range(1, len(BAD) + 1))
    for i, (case, _, reason) in enumerate(BAD, start=1):
        assert reason in reasons[i], (case, reasons[i])
    with service.services.transaction() as conn:
        letters = dead_letter_rows(conn)
        assert [s[1] for s in stored_strips(conn)] == [at(30), at(29)]
    assert [(source, index) for source, index, _ in letters] == [("http", i) for i in range(1, len(BAD) + 1)]


def test_nan_in_a_strip_is_refused_as_json(service: RunningService, admin: httpx.Client) -> None:
    with service.services.transaction() as conn:
        register_cardiac(conn, "KARDIA-3")
    strip = wire_strip("KARDIA-3", 5, seconds=1)
    strip["leads"]["I"][5] = math.nan
    body = json.dumps({"device_id": "KARDIA-3", "readings": [strip]}).encode()  # writes NaN
    r = admin.post("/v1/readings", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and "NaN" in r.json()["detail"]
    with service.services.transaction() as conn:
        assert stored_strips(conn) == []
        assert "NaN" in dead_letter_rows(conn)[0][2]


def test_unregistered_and_unassigned_devices_are_dead_lettered(
    service: RunningService, admin: httpx.Client
) -> None:
    with service.services.transaction() as conn:
        register_cardiac(conn, "KARDIA-4")
    early = wire_strip("KARDIA-4", 3 * 24 * 60, seconds=1)
    r = post(admin, "KARDIA-4", early)
    assert "not assigned to a patient" in r.json()["rejected"][0]["reason"]
    r = post(admin, "NOBODY-ECG", wire_strip("NOBODY-ECG", 1, seconds=1))
    assert "not registered" in r.json()["rejected"][0]["reason"]


def test_a_20_mb_body_is_refused_and_the_service_keeps_working(
    service: RunningService, admin: httpx.Client
) -> None:
    with service.services.transaction() as conn:
        register_cardiac(conn, "KARDIA-5")
    huge = wire_strip("KARDIA-5", 5, seconds=1)
    huge["leads"]["I"] = [1000] * (20 * 1024 * 1024 // 5)
    body = json.dumps({"device_id": "KARDIA-5", "readings": [huge]}).encode()
    assert len(body) > 20 * 1024 * 1024
    r = admin.post("/v1/readings", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "over 4194304 bytes" in r.json()["detail"]
    # chunked, without a length: cut off as it arrives
    chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
    r = admin.post("/v1/readings", content=chunks, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert post(admin, "KARDIA-5", wire_strip("KARDIA-5", 4)).json()["accepted"] == 1


def test_a_large_body_without_an_ecg_reading_keeps_the_ordinary_limit(
    service: RunningService, admin: httpx.Client
) -> None:
    with service.services.transaction() as conn:
        register_cardiac(conn, "KARDIA-7")
    hr = {"metric": "heart_rate", "value": 64, "unit": "/min", "measured_at": iso(at(5)), "source": "x"}
    body = {"device_id": "KARDIA-7", "readings": [hr], "pad": " " * (2 * 1024 * 1024)}
    r = admin.post("/v1/readings", json=body)
    assert r.status_code == 413
    assert "only a message holding an ECG reading may be up to" in r.json()["detail"]
    other = service.client(service.token("admin")).get("/v1/clinics", params={"x": "1"})
    assert other.status_code == 200
    big_elsewhere = admin.post(
        "/v1/clinics",
        content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
        headers={"content-type": "application/json"},
    )
    assert big_elsewhere.status_code == 413  # the wider limit is the readings route's alone


def test_a_strip_from_a_device_registered_later_is_replayed_whole(
    service: RunningService, admin: httpx.Client
) -> None:
    strip = wire_strip("KARDIA-LATE", 5, leads=("I", "II"), seconds=20, interpretation="sinus_rhythm")
    r = post(admin, "KARDIA-LATE", strip)
    assert r.json()["rejected"] == [{"index": 0, "reason": "device 'KARDIA-LATE' is not registered"}]
    [letter] = admin.get("/v1/dead-letters").json()["dead_letters"]
    with service.services.transaction() as conn:
        register_cardiac(conn, "KARDIA-LATE")
    replayed = admin.post(f"/v1/dead-letters/{letter['id']}/replay")
    assert replayed.status_code == 200 and replayed.json()["accepted"] == 1, replayed.text
    with service.services.transaction() as conn:
        [row] = conn.execute("SELECT id FROM ecg_strips").fetchall()
        stored = load_strip(conn, row[0])
    assert stored is not None
    assert {k: v.tolist() for k, v in stored.strip.leads.items()} == strip["leads"]
    assert stored.strip.interpretation == "sinus_rhythm"

"""Registry, HTTP ingest and queries through the real HTTP server and a real PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.service import RunningService

NOW = datetime.now(UTC).replace(microsecond=0)


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def setup_patient(client: httpx.Client, device_id: str = "CUFF-1", mrn: str = "MRN-1") -> str:
    r = client.post("/v1/patients", json={"mrn": mrn, "display_name": "Ada Example"})
    assert r.status_code == 201, r.text
    patient_id: str = r.json()["id"]
    r = client.post("/v1/devices", json={"id": device_id, "type": "bp_cuff", "model": "X1"})
    assert r.status_code == 201, r.text
    r = client.put(
        f"/v1/devices/{device_id}/assignment",
        json={"patient_id": patient_id, "since": iso(NOW - timedelta(days=30))},
    )
    assert r.status_code == 200, r.text
    return patient_id


def hr(value: Any, at: datetime, **extra: Any) -> dict[str, Any]:
    return {"metric": "heart_rate", "value": value, "unit": "/min", "measured_at": iso(at), **extra}


@pytest.fixture
def admin(service: RunningService) -> httpx.Client:
    return service.client(service.token("admin"))


def test_auth_is_required_and_checked(service: RunningService) -> None:
    with service.client() as anonymous:
        assert anonymous.get("/v1/patients").status_code == 401
        assert anonymous.get("/healthz").json() == {"status": "ok"}
    with service.client("rpm_not-a-real-token") as bad:
        r = bad.get("/v1/patients")
        assert r.status_code == 401 and "invalid" in r.json()["detail"]


def test_register_ingest_and_query(service: RunningService, admin: httpx.Client) -> None:
    patient_id = setup_patient(admin)
    body = {
        "device_id": "CUFF-1",
        "readings": [
            hr(72, NOW - timedelta(minutes=5)),
            {
                "metric": "systolic_bp",
                "value": 17.0,
                "unit": "kPa",
                "measured_at": iso(NOW - timedelta(minutes=4)),
            },
            {
                "metric": "diastolic_bp",
                "value": 84,
                "unit": "mm[Hg]",
                "measured_at": iso(NOW - timedelta(minutes=4)),
            },
            {
                "metric": "body_weight",
                "value": 181.4,
                "unit": "[lb_av]",
                "measured_at": (NOW - timedelta(minutes=3)).astimezone().isoformat(),
            },
        ],
    }
    r = admin.post("/v1/readings", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 4, "duplicates": 0, "rejected": []}
    # The same body again changes nothing.
    assert admin.post("/v1/readings", json=body).json() == {"accepted": 0, "duplicates": 4, "rejected": []}

    r = admin.get(f"/v1/patients/{patient_id}/readings", params={"since": iso(NOW - timedelta(hours=1))})
    assert r.status_code == 200, r.text
    readings = {x["metric"]: x for x in r.json()["readings"]}
    assert set(readings) == {"heart_rate", "systolic_bp", "diastolic_bp", "body_weight"}
    assert readings["systolic_bp"]["value"] == pytest.approx(127.51, abs=0.01)
    assert readings["systolic_bp"]["unit"] == "mm[Hg]"
    assert readings["systolic_bp"]["original_unit"] == "kPa"
    assert readings["body_weight"]["value"] == pytest.approx(82.2817, abs=1e-3)
    assert readings["heart_rate"]["device_id"] == "CUFF-1"

    r = admin.get(
        f"/v1/patients/{patient_id}/readings",
        params={"metric": "heart_rate", "bucket": "1h", "since": iso(NOW - timedelta(hours=2))},
    )
    assert r.status_code == 200, r.text
    [bucket] = r.json()["buckets"]
    assert bucket["metric"] == "heart_rate"
    assert (bucket["min"], bucket["max"], bucket["avg"], bucket["count"]) == (72, 72, 72, 1)


def test_device_moves_between_patients(service: RunningService, admin: httpx.Client) -> None:
    first = setup_patient(admin, "SCALE-1", "MRN-A")
    second = admin.post("/v1/patients", json={"mrn": "MRN-B", "display_name": "Bo"}).json()["id"]
    moved = NOW - timedelta(hours=1)
    admin.put("/v1/devices/SCALE-1/assignment", json={"patient_id": second, "since": iso(moved)})
    body = {"device_id": "SCALE-1", "readings": [hr(60, moved - timedelta(minutes=1)), hr(61, moved)]}
    assert admin.post("/v1/readings", json=body).json()["accepted"] == 2
    since = {"since": iso(NOW - timedelta(hours=3))}
    a = admin.get(f"/v1/patients/{first}/readings", params=since).json()["readings"]
    b = admin.get(f"/v1/patients/{second}/readings", params=since).json()["readings"]
    assert [x["value"] for x in a] == [60] and [x["value"] for x in b] == [61]


BAD_READINGS: list[tuple[Any, str]] = [
    ({"metric": "heart_rate", "value": "72", "unit": "/min", "measured_at": iso(NOW)}, "value"),
    ({"metric": "heart_rate", "value": True, "unit": "/min", "measured_at": iso(NOW)}, "value"),
    ({"metric": "mood", "value": 3, "unit": "1", "measured_at": iso(NOW)}, "unknown metric"),
    ({"metric": "body_weight", "value": 3, "unit": "stone", "measured_at": iso(NOW)}, "not convertible"),
    ({"metric": "heart_rate", "value": 900, "unit": "/min", "measured_at": iso(NOW)}, "plausible range"),
    ({"metric": "spo2", "value": -1, "unit": "%", "measured_at": iso(NOW)}, "plausible range"),
    ({"metric": "heart_rate", "value": 70, "unit": "/min", "measured_at": "2026-11-25T08:30:00"}, "timezone"),
    (
        {"metric": "heart_rate", "value": 70, "unit": "/min", "measured_at": iso(NOW + timedelta(hours=1))},
        "future",
    ),
    ({"metric": "heart_rate", "value": 70, "unit": "/min", "measured_at": 1764059400}, "RFC 3339"),
    ({"metric": "heart_rate", "value": 70, "unit": "/min"}, "measured_at"),
    (
        {"metric": "heart_rate", "value": 70, "unit": "/min", "measured_at": iso(NOW), "device_id": "OTHER"},
        "does not match",
    ),
    ("not an object", "JSON object"),
    (
        {"metric": "'; DROP TABLE readings; --", "value": 1, "unit": "/min", "measured_at": iso(NOW)},
        "unknown metric",
    ),
]


def test_each_bad_reading_is_refused_with_a_reason_and_neighbours_stored(
    service: RunningService, admin: httpx.Client
) -> None:
    setup_patient(admin)
    good = [hr(70 + i, NOW - timedelta(minutes=i + 1)) for i in range(len(BAD_READINGS))]
    mixed: list[Any] = []
    for g, (bad, _) in zip(good, BAD_READINGS, strict=True):
        mixed += [g, bad]
    r = admin.post("/v1/readings", json={"device_id": "CUFF-1", "readings": mixed})
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["accepted"] == len(good)
    assert [x["index"] for x in result["rejected"]] == list(range(1, len(mixed), 2))
    for rejection, (_, expected) in zip(result["rejected"], BAD_READINGS, strict=True):
        assert expected in rejection["reason"], rejection
    letters = admin.get("/v1/dead-letters").json()["dead_letters"]
    assert len(letters) == len(BAD_READINGS)
    assert all(x["source"] == "http" and x["device_id"] == "CUFF-1" for x in letters)


def test_nan_and_infinity_are_refused(service: RunningService, admin: httpx.Client) -> None:
    setup_patient(admin)
    raw = (
        '{"device_id": "CUFF-1", "readings": [{"metric": "heart_rate", "value": NaN,'
        ' "unit": "/min", "measured_at": "%s"}]}'
    )
    r = admin.post("/v1/readings", content=raw % iso(NOW), headers={"content-type": "application/json"})
    assert r.status_code == 400 and "NaN" in r.json()["detail"]
    huge = raw.replace("NaN", "1e400") % iso(NOW)
    r = admin.post("/v1/readings", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 200 and "finite" in r.json()["rejected"][0]["reason"]
    r = admin.post("/v1/readings", content=raw.replace("NaN", "-Infinity") % iso(NOW))
    assert r.status_code == 400 and "-Infinity" in r.json()["detail"]


@pytest.mark.parametrize(
    ("content", "status", "fragment"),
    [
        (b'{"device_id": "CUFF-1", "readings": [', 400, "not valid JSON"),
        (b"\xff\xfe garbage", 400, "UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, 400, ""),
        (b"[1, 2]", 422, "JSON object"),
        (b'{"readings": []}', 422, "device_id"),
        (b'{"device_id": "bad id!", "readings": []}', 422, "device_id"),
        (b'{"device_id": "CUFF-1", "readings": []}', 422, "non-empty"),
        (b'{"device_id": "CUFF-1", "readings": {"a": 1}}', 422, "array"),
    ],
)
def test_malformed_bodies(
    service: RunningService, admin: httpx.Client, content: bytes, status: int, fragment: str
) -> None:
    r = admin.post("/v1/readings", content=content, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert fragment in r.json()["detail"]


def test_oversized_body_and_too_many_readings(service: RunningService, admin: httpx.Client) -> None:
    setup_patient(admin)
    huge = b'{"device_id": "CUFF-1", "readings": ["' + b"x" * (2 * 1024 * 1024) + b'"]}'
    r = admin.post("/v1/readings", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413
    many = [hr(70, NOW - timedelta(seconds=i)) for i in range(10_000)]
    r = admin.post("/v1/readings", json={"device_id": "CUFF-1", "readings": many})
    assert r.status_code == 413 and "at most 1000" in r.json()["detail"]
    r = admin.post("/v1/patients", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_unknown_and_unassigned_devices_are_dead_lettered(
    service: RunningService, admin: httpx.Client
) -> None:
    r = admin.post("/v1/readings", json={"device_id": "GHOST", "readings": [hr(70, NOW)]})
    assert r.json()["rejected"] == [{"index": 0, "reason": "device 'GHOST' is not registered"}]
    setup_patient(admin)
    early = NOW - timedelta(days=40)  # before the assignment started
    r = admin.post("/v1/readings", json={"device_id": "CUFF-1", "readings": [hr(70, early)]})
    assert "not assigned" in r.json()["rejected"][0]["reason"]
    letters = admin.get("/v1/dead-letters").json()["dead_letters"]
    assert {x["device_id"] for x in letters} == {"GHOST", "CUFF-1"}
    # Register the ghost and replay its dead letter: now it is stored.
    patient = admin.post("/v1/patients", json={"mrn": "G", "display_name": "G"}).json()["id"]
    admin.post("/v1/devices", json={"id": "GHOST", "type": "hr_strap"})
    admin.put(
        "/v1/devices/GHOST/assignment", json={"patient_id": patient, "since": iso(NOW - timedelta(days=1))}
    )
    ghost_letter = next(x for x in letters if x["device_id"] == "GHOST")
    r = admin.post(f"/v1/dead-letters/{ghost_letter['id']}/replay")
    assert r.status_code == 200 and r.json()["accepted"] == 1
    assert admin.post(f"/v1/dead-letters/{ghost_letter['id']}/replay").json()["duplicates"] == 1


def test_device_token_posts_only_for_its_device(service: RunningService, admin: httpx.Client) -> None:
    setup_patient(admin)
    admin.post("/v1/devices", json={"id": "OTHER-1", "type": "scale"})
    with service.client(service.token("device", device="CUFF-1")) as device:
        ok = device.post("/v1/readings", json={"device_id": "CUFF-1", "readings": [hr(70, NOW)]})
        assert ok.status_code == 200 and ok.json()["accepted"] == 1
        r = device.post("/v1/readings", json={"device_id": "OTHER-1", "readings": [hr(70, NOW)]})
        assert r.status_code == 403
        assert device.get("/v1/patients").status_code == 403


def test_sql_metacharacters_are_data(service: RunningService, admin: httpx.Client) -> None:
    name = "Robert'); DROP TABLE patients;-- \\ % _"
    r = admin.post("/v1/patients", json={"mrn": "x'--", "display_name": name})
    assert r.status_code == 201 and r.json()["display_name"] == name
    assert [p["display_name"] for p in admin.get("/v1/patients", params={"q": "%"}).json()] == [name]
    assert admin.post("/v1/devices", json={"id": "a';--", "type": "x"}).status_code == 422
    assert admin.get("/v1/patients/not-a-uuid").status_code == 422
    assert admin.post("/v1/patients", json={"mrn": "x'--", "display_name": "dup"}).status_code == 409


def test_validation_errors_are_4xx(service: RunningService, admin: httpx.Client) -> None:
    setup_patient(admin)
    assert admin.post("/v1/patients", json={"mrn": ""}).status_code == 422
    assert (
        admin.post("/v1/patients", content=b"{", headers={"content-type": "application/json"}).status_code
        == 422
    )
    assert (
        admin.put(
            "/v1/devices/CUFF-1/assignment", json={"patient_id": None, "since": "2026-01-01T00:00:00"}
        ).status_code
        == 422
    )
    assert (
        admin.put("/v1/devices/NOPE/assignment", json={"patient_id": None, "since": iso(NOW)}).status_code
        == 404
    )
    r = admin.get("/v1/patients/00000000-0000-0000-0000-000000000000/readings")
    assert r.status_code == 404
    pid = admin.get("/v1/patients").json()[0]["id"]
    assert admin.get(f"/v1/patients/{pid}/readings", params={"bucket": "7 parsecs"}).status_code == 422
    assert admin.get(f"/v1/patients/{pid}/readings", params={"metric": "nope"}).status_code == 422
    assert (
        admin.get(f"/v1/patients/{pid}/readings", params={"since": "2026-01-01T00:00:00"}).status_code == 422
    )


def test_metrics_and_readiness(service: RunningService, admin: httpx.Client) -> None:
    setup_patient(admin)
    admin.post("/v1/readings", json={"device_id": "CUFF-1", "readings": [hr(70, NOW), hr(1000, NOW)]})
    text = admin.get("/metrics").text
    assert 'rpm_readings_stored_total{source="http"} 1.0' in text
    assert 'rpm_readings_rejected_total{source="http"} 1.0' in text
    r = admin.get("/readyz")
    assert r.status_code == 200 and r.json()["checks"]["database"]["ok"] is True
    assert json.loads(admin.get("/openapi.json").text)["paths"]["/v1/readings"]


def test_battery_level_updates_the_device(service: RunningService, admin: httpx.Client) -> None:
    setup_patient(admin)
    body = {
        "device_id": "CUFF-1",
        "battery_level": 14,
        "readings": [hr(70, NOW - timedelta(minutes=2)), hr(71, NOW - timedelta(minutes=1))],
    }
    assert admin.post("/v1/readings", json=body).json()["accepted"] == 2
    assert admin.get("/v1/devices/CUFF-1").json()["battery_level"] == 14
    older = {"device_id": "CUFF-1", "readings": [hr(69, NOW - timedelta(minutes=3), battery_level=90)]}
    admin.post("/v1/readings", json=older)
    # the level of a batch's newest reading wins; a later batch with a level replaces it
    assert admin.get("/v1/devices/CUFF-1").json()["battery_level"] == 90

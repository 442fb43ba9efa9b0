"""The billing API over HTTP against the real service: clinic time zones, episodes, clinician
time entries (tenancy, bad input, author-or-admin deletion, audit) and the monthly report."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from ingest.billing.component import billing_component
from ingest.settings import Settings
from tests.support.service import RunningService, running_service


@pytest.fixture
def svc(settings: Settings) -> Iterator[RunningService]:
    with running_service(settings, factories=[billing_component]) as s:
        yield s


@pytest.fixture
def world(svc: RunningService) -> Iterator[dict[str, Any]]:
    """Two clinics (New York, Berlin), a patient in each, an admin and clinicians."""
    admin = svc.client(svc.token("admin", name="Admin"))
    for cid, tz in (("ny", "America/New_York"), ("be", "Europe/Berlin")):
        assert admin.post("/v1/clinics", json={"id": cid, "name": cid, "timezone": tz}).status_code == 201
    alice = svc.client(svc.token("clinician", clinic="ny", name="Dr Alice"))
    bob = svc.client(svc.token("clinician", clinic="ny", name="Dr Bob"))
    berta = svc.client(svc.token("clinician", clinic="be", name="Dr Berta"))
    ny_patient = alice.post("/v1/patients", json={"mrn": "NY1", "display_name": "Ann", "clinic": "ny"}).json()
    be_patient = berta.post(
        "/v1/patients", json={"mrn": "BE1", "display_name": "Bert", "clinic": "be"}
    ).json()
    yield {
        "admin": admin,
        "alice": alice,
        "bob": bob,
        "berta": berta,
        "ny": ny_patient["id"],
        "be": be_patient["id"],
    }
    for c in (admin, alice, bob, berta):
        c.close()


def test_clinic_time_zone_is_an_iana_name(world: dict[str, Any]) -> None:
    admin: httpx.Client = world["admin"]
    listed = {c["id"]: c["timezone"] for c in admin.get("/v1/clinics").json()}
    assert listed == {"default": "UTC", "ny": "America/New_York", "be": "Europe/Berlin"}
    assert admin.post("/v1/clinics", json={"id": "plain", "name": "p"}).json()["timezone"] == "UTC"
    for bad in ("Mars/Olympus_Mons", "../../etc/passwd", "", "EST5EDT ", "localtime", "x" * 65, 5):
        r = admin.post("/v1/clinics", json={"id": "bad", "name": "b", "timezone": bad})
        assert r.status_code == 422, bad
    r = admin.patch("/v1/clinics/plain", json={"timezone": "Asia/Kolkata"})
    assert r.status_code == 200 and r.json()["timezone"] == "Asia/Kolkata"
    assert admin.patch("/v1/clinics/plain", json={"timezone": "Nowhere/Land"}).status_code == 422
    assert admin.patch("/v1/clinics/plain", json={}).status_code == 422
    assert admin.patch("/v1/clinics/nope", json={"timezone": "UTC"}).status_code == 404
    assert world["alice"].patch("/v1/clinics/ny", json={"timezone": "UTC"}).status_code == 403


def test_time_entries_round_trip(world: dict[str, Any]) -> None:
    alice: httpx.Client = world["alice"]
    pid = world["ny"]
    r = alice.post(
        f"/v1/patients/{pid}/time",
        json={
            "minutes": 12,
            "interactive": True,
            "performed_at": "2026-03-31T23:30:00-04:00",
            "note": " call ",
        },
    )
    assert r.status_code == 201, r.text
    entry = r.json()
    assert {k: entry[k] for k in ("minutes", "interactive", "clinician", "note")} == {
        "minutes": 12,
        "interactive": True,
        "clinician": "Dr Alice",
        "note": "call",
    }
    assert datetime.fromisoformat(entry["performed_at"]) == datetime(2026, 4, 1, 3, 30, tzinfo=UTC)
    alice.post(
        f"/v1/patients/{pid}/time",
        json={"minutes": 5, "interactive": False, "performed_at": "2026-03-02T12:00:00Z"},
    )
    march = alice.get(f"/v1/patients/{pid}/time", params={"month": "2026-03"}).json()
    assert (march["total_minutes"], march["interactive"], len(march["entries"])) == (17, True, 2)
    assert march["timezone"] == "America/New_York"  # 03:30Z on April 1 is March 31 in New York
    assert alice.get(f"/v1/patients/{pid}/time", params={"month": "2026-04"}).json()["total_minutes"] == 0
    now = alice.post(f"/v1/patients/{pid}/time", json={"minutes": 3, "interactive": False}).json()
    assert abs(datetime.fromisoformat(now["performed_at"]) - datetime.now(UTC)) < timedelta(minutes=5)
    assert alice.get(f"/v1/patients/{pid}/time").json()["total_minutes"] >= 3  # this month by default


BAD_ENTRIES = [
    {"minutes": 0, "interactive": True},
    {"minutes": 500, "interactive": True},
    {"minutes": 241, "interactive": True},
    {"minutes": -5, "interactive": True},
    {"minutes": 12.5, "interactive": True},
    {"minutes": "12", "interactive": True},
    {"minutes": True, "interactive": True},
    {"minutes": 12},
    {"interactive": True},
    {"minutes": 12, "interactive": "yes"},
    {"minutes": 12, "interactive": True, "performed_at": "2026-03-01T10:00:00"},  # no offset
    {"minutes": 12, "interactive": True, "performed_at": "2999-01-01T00:00:00Z"},  # future
    {"minutes": 12, "interactive": True, "performed_at": "1999-12-31T00:00:00Z"},
    {"minutes": 12, "interactive": True, "performed_at": "yesterday"},
    {"minutes": 12, "interactive": True, "note": "x" * 2001},
    {"minutes": 12, "interactive": True, "clinician": "someone else"},
]


@pytest.mark.parametrize("body", BAD_ENTRIES, ids=[str(i) for i in range(len(BAD_ENTRIES))])
def test_bad_time_entries_are_refused_with_a_reason(world: dict[str, Any], body: dict[str, Any]) -> None:
    r = world["alice"].post(f"/v1/patients/{world['ny']}/time", json=body)
    assert r.status_code == 422 and r.json()["detail"], r.text


def test_time_entries_respect_tenancy(world: dict[str, Any], svc: RunningService) -> None:
    berta: httpx.Client = world["berta"]
    ny = world["ny"]
    assert berta.post(f"/v1/patients/{ny}/time", json={"minutes": 12, "interactive": True}).status_code == 404
    assert berta.get(f"/v1/patients/{ny}/time").status_code == 404
    entry = world["alice"].post(f"/v1/patients/{ny}/time", json={"minutes": 12, "interactive": True}).json()
    assert berta.delete(f"/v1/patients/{ny}/time/{entry['id']}").status_code == 404
    # an entry id under another patient is not found either
    assert world["alice"].delete(f"/v1/patients/{world['be']}/time/{entry['id']}").status_code == 404
    device = svc.client(svc.token("admin"))
    device.post("/v1/devices", json={"id": "cuff-9", "type": "bp", "clinic": "ny"})
    with svc.client(svc.token("device", device="cuff-9")) as dev:
        assert (
            dev.post(f"/v1/patients/{ny}/time", json={"minutes": 12, "interactive": True}).status_code == 403
        )
    device.close()
    assert (
        httpx.post(
            f"{svc.base_url}/v1/patients/{ny}/time", json={"minutes": 1, "interactive": True}
        ).status_code
        == 401
    )


def test_only_the_author_or_an_admin_deletes_and_the_deletion_is_audited(
    world: dict[str, Any], svc: RunningService
) -> None:
    alice, bob, admin = world["alice"], world["bob"], world["admin"]
    pid = world["ny"]
    mine = alice.post(f"/v1/patients/{pid}/time", json={"minutes": 12, "interactive": True}).json()
    other = alice.post(f"/v1/patients/{pid}/time", json={"minutes": 8, "interactive": False}).json()
    assert mine["can_delete"] is True
    listed = {e["id"]: e["can_delete"] for e in bob.get(f"/v1/patients/{pid}/time").json()["entries"]}
    assert listed == {mine["id"]: False, other["id"]: False}
    r = bob.delete(f"/v1/patients/{pid}/time/{mine['id']}")
    assert r.status_code == 403 and "author" in r.json()["detail"]
    assert alice.delete(f"/v1/patients/{pid}/time/{mine['id']}").status_code == 204
    assert alice.delete(f"/v1/patients/{pid}/time/{mine['id']}").status_code == 404
    assert admin.delete(f"/v1/patients/{pid}/time/{other['id']}").status_code == 204
    assert alice.get(f"/v1/patients/{pid}/time").json()["entries"] == []
    assert alice.delete(f"/v1/patients/{pid}/time/not-a-uuid").status_code == 422
    with svc.services.transaction() as conn:
        kept = conn.execute("SELECT count(*) FROM clinician_time WHERE deleted_at IS NOT NULL").fetchone()
        audit = conn.execute(
            "SELECT actor_name, status, resource->>'entry_id' FROM audit_log"
            " WHERE method = 'DELETE' AND route = '/v1/patients/{patient_id}/time/{entry_id}' ORDER BY id"
        ).fetchall()
    assert kept == (2,)
    assert [(a[0], a[1]) for a in audit] == [
        ("Dr Bob", 403),
        ("Dr Alice", 204),
        ("Dr Alice", 404),
        ("Admin", 204),
        ("Dr Alice", 422),
    ]
    assert audit[1][2] == mine["id"]


def test_explicit_episodes(world: dict[str, Any]) -> None:
    alice: httpx.Client = world["alice"]
    pid = world["ny"]
    r = alice.post(f"/v1/patients/{pid}/episodes", json={"start": "2026-03-01T09:00:00-05:00"})
    assert r.status_code == 201 and r.json()["started_by"] == "explicit"
    assert (
        alice.post(f"/v1/patients/{pid}/episodes", json={"start": "2026-02-01T09:00:00Z"}).status_code == 409
    )
    assert (
        alice.post(f"/v1/patients/{pid}/episodes", json={"start": "2026-03-01T09:00:00"}).status_code == 422
    )
    assert (
        alice.post(f"/v1/patients/{pid}/episodes", json={"start": "2999-01-01T00:00:00Z"}).status_code == 422
    )
    assert alice.post(f"/v1/patients/{pid}/episodes", json={}).status_code == 422
    assert (
        world["berta"]
        .post(f"/v1/patients/{pid}/episodes", json={"start": "2026-04-01T00:00:00Z"})
        .status_code
        == 404
    )
    assert len(alice.get(f"/v1/patients/{pid}/episodes").json()) == 1


@pytest.mark.parametrize(
    "month",
    [
        "2026-13",
        "2026-1",
        "july",
        "2026-00",
        "26-03",
        "2026-03-01",
        " 2026-03",
        "1999-12",
        "２０２６-03",
        "2026-03\n",
    ],
)
def test_a_month_that_is_not_yyyy_mm_is_422(world: dict[str, Any], month: str) -> None:
    r = world["alice"].get("/v1/billing", params={"month": month})
    assert r.status_code == 422 and "YYYY-MM" in r.json()["detail"]
    r = world["alice"].get(f"/v1/patients/{world['ny']}/time", params={"month": month})
    assert r.status_code == 422


def test_report_tenancy(world: dict[str, Any]) -> None:
    alice, berta, admin = world["alice"], world["berta"], world["admin"]
    alice.post(f"/v1/patients/{world['ny']}/episodes", json={"start": "2026-03-01T09:00:00-05:00"})
    berta.post(f"/v1/patients/{world['be']}/episodes", json={"start": "2026-03-01T09:00:00+01:00"})
    mine = alice.get("/v1/billing", params={"month": "2026-03"}).json()
    assert (mine["clinic"], [p["mrn"] for p in mine["patients"]]) == ("ny", ["NY1"])
    assert alice.get("/v1/billing", params={"month": "2026-03", "clinic": "be"}).status_code == 404
    assert alice.get("/v1/billing", params={"month": "2026-03", "patient": world["be"]}).status_code == 404
    assert admin.get("/v1/billing", params={"month": "2026-03"}).status_code == 422  # which clinic?
    assert [
        p["mrn"]
        for p in admin.get("/v1/billing", params={"month": "2026-03", "clinic": "be"}).json()["patients"]
    ] == ["BE1"]
    assert admin.get("/v1/billing", params={"month": "2026-03", "clinic": "nope"}).status_code == 404


def test_report_counts_only_stored_readings_not_dead_letters_and_answers_csv(world: dict[str, Any]) -> None:
    alice, admin = world["alice"], world["admin"]
    pid = world["ny"]
    admin.post("/v1/devices", json={"id": "hr-1", "type": "hr", "clinic": "ny"})
    r = alice.put(
        "/v1/devices/hr-1/assignment", json={"patient_id": pid, "since": "2026-03-01T08:00:00-05:00"}
    )
    assert r.status_code == 200
    good = [
        {"metric": "heart_rate", "value": 70, "unit": "/min", "measured_at": f"2026-03-{d:02d}T14:00:00Z"}
        for d in range(1, 17)
    ]
    bad = [
        {"metric": "heart_rate", "value": 900, "unit": "/min", "measured_at": f"2026-03-{d:02d}T14:00:00Z"}
        for d in range(17, 25)
    ]
    r = admin.post("/v1/readings", json={"device_id": "hr-1", "readings": good[:15] + bad})
    assert r.status_code == 200 and r.json()["accepted"] == 15 and len(r.json()["rejected"]) == 8
    r = admin.post(
        "/v1/readings", json={"device_id": "hr-1", "readings": [{"metric": "heart_rate", "value": "x"}]}
    )
    assert r.status_code in (200, 422)
    body = alice.get("/v1/billing", params={"month": "2026-03"}).json()
    [patient] = body["patients"]
    assert patient["periods"] == [{"start": "2026-03-01", "end": "2026-03-30", "days_with_readings": 15}]
    assert [c["code"] for c in patient["codes"]] == ["99453", "99445"]
    alice.post("/v1/readings", json={"device_id": "hr-1", "readings": good[15:]})
    alice.post(
        f"/v1/patients/{pid}/time",
        json={"minutes": 20, "interactive": True, "performed_at": "2026-03-20T15:00:00Z"},
    )
    r = alice.get("/v1/billing", params={"month": "2026-03"}, headers={"Accept": "text/csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == 'attachment; filename="rpm-billing-ny-2026-03.csv"'
    assert r.text.splitlines() == [
        "mrn,display_name,code,units,period_start,period_end,days_with_readings,management_minutes",
        "NY1,Ann,99453,1,2026-03-01,2026-03-30,16,20",
        "NY1,Ann,99454,1,2026-03-01,2026-03-30,16,20",
        "NY1,Ann,99457,1,2026-03-01,2026-03-31,,20",
    ]
    one = alice.get("/v1/billing", params={"month": "2026-03", "patient": pid}).json()
    assert [p["mrn"] for p in one["patients"]] == ["NY1"]

"""Outbound webhooks: a real local HTTP receiver gets signed payloads; 500s are retried; every
attempt is in the delivery log; redirects are not followed; a huge answer is not read; management
is for admins. (Refused destinations: test_webhook_destinations.py.)"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from ipaddress import ip_network
from typing import Any, Final

import pytest

from ingest.alerts.component import alerts_component
from ingest.alerts.webhooks import verify
from ingest.settings import Settings
from tests.support.alerts import Clinic, ago, alert_settings, reading
from tests.support.service import RunningService, running_service
from tests.support.waiting import wait_for_value as wait_for
from tests.support.webhooks import LARGE_BODY_BYTES, Firehose, Receiver

LOOPBACK: Final = (ip_network("127.0.0.1/32"),)


@pytest.fixture
def svc(settings: Settings) -> Iterator[RunningService]:
    """The service of the alert tests, with the receivers' network allowed: they listen on
    127.0.0.1, which webhooks reach only when the deployment allows it (RPM_WEBHOOK_ALLOW_NETWORKS)."""
    allowed = alert_settings(settings).model_copy(update={"webhook_allow_networks": LOOPBACK})
    with running_service(allowed, factories=[alerts_component]) as s:
        yield s


@pytest.fixture
def receiver() -> Iterator[Callable[[list[int]], Receiver]]:
    made: list[Receiver] = []

    def make(statuses: list[int]) -> Receiver:
        r = Receiver(statuses)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def test_receiver_gets_a_signed_payload_and_a_500_is_retried(
    svc: RunningService, clinic: Clinic, receiver: Callable[[list[int]], Receiver]
) -> None:
    hook = receiver([500, 500])
    r = clinic.http.post("/v1/clinics/default/webhooks", json={"url": hook.url, "description": "pager"})
    assert r.status_code == 201, r.text
    created = r.json()
    secret = created["secret"]
    assert secret.startswith("whsec_") and created["min_severity"] == "warning"
    listed = clinic.http.get("/v1/clinics/default/webhooks").json()
    assert [w["id"] for w in listed] == [created["id"]] and "secret" not in listed[0]

    pid = clinic.patient("CUFF-1")
    clinic.post("CUFF-1", reading("systolic_bp", 190, ago(minutes=1)))
    wait_for(lambda: len(hook.requests) >= 3)
    bodies = [body for _, body in hook.requests]
    assert len(set(bodies)) == 1  # the same payload each time
    for headers, body in hook.requests:
        assert headers["content-type"] == "application/json"
        assert verify(secret, headers["x-rpm-timestamp"], body, headers["x-rpm-signature"])
        assert not verify("whsec_wrong", headers["x-rpm-timestamp"], body, headers["x-rpm-signature"])
        assert headers["x-rpm-event"] == "opened"
    payload = json.loads(bodies[0])
    assert payload["type"] == "opened" and payload["alert"]["patient_id"] == pid
    assert payload["alert"]["rule"] == "threshold:blood_pressure"
    assert payload["alert"]["severity"] == "critical"
    assert str(payload["event_id"]) == hook.requests[0][0]["x-rpm-event-id"]
    # What people read says mmHg; the data keeps the UCUM code.
    assert payload["alert"]["unit"] == "mm[Hg]" and payload["alert"]["display_unit"] == "mmHg"
    assert payload["text"].startswith("Critical alert opened: ") and "190 mmHg" in payload["text"]
    assert "mm[Hg]" not in payload["text"]

    def delivered() -> list[dict[str, Any]] | None:
        page = clinic.http.get(f"/v1/clinics/default/webhooks/{created['id']}/deliveries").json()
        done = page["deliveries"]
        return done if done and done[0]["status"] == "delivered" else None

    [delivery] = wait_for(delivered)
    assert delivery["attempts"] == 3 and delivery["last_status_code"] == 200
    attempts = [(a["attempt"], a["status_code"]) for a in delivery["attempt_log"]]
    assert attempts == [(1, 500), (2, 500), (3, 200)]
    assert delivery["attempt_log"][0]["error"] == "HTTP 500"


def test_delivery_gives_up_after_max_attempts_and_filters_apply(
    svc: RunningService, clinic: Clinic, receiver: Callable[[list[int]], Receiver]
) -> None:
    hook = receiver([503] * 50)
    critical_only = receiver([])
    r = clinic.http.post("/v1/clinics/default/webhooks", json={"url": hook.url})
    failing = r.json()["id"]
    r = clinic.http.post(
        "/v1/clinics/default/webhooks",
        json={"url": critical_only.url, "min_severity": "critical", "event_types": ["opened"]},
    )
    assert r.status_code == 201, r.text
    clinic.patient("CUFF-1")
    clinic.post("CUFF-1", reading("systolic_bp", 165, ago(minutes=2)))  # warning
    clinic.post("CUFF-1", reading("blood_glucose", 40, ago(minutes=1)))  # critical

    def failed() -> list[dict[str, Any]] | None:
        rows = clinic.http.get(f"/v1/clinics/default/webhooks/{failing}/deliveries").json()["deliveries"]
        return rows if len(rows) == 2 and all(d["status"] == "failed" for d in rows) else None

    rows = wait_for(failed, timeout_s=60)
    assert all(d["attempts"] == svc.services.settings.webhook_max_attempts for d in rows)
    wait_for(lambda: len(critical_only.requests) == 1)
    time.sleep(0.5)
    assert len(critical_only.requests) == 1
    assert json.loads(critical_only.requests[0][1])["alert"]["metric"] == "blood_glucose"


def test_a_disabled_webhook_receives_nothing_more(
    svc: RunningService, clinic: Clinic, receiver: Callable[[list[int]], Receiver]
) -> None:
    hook = receiver([])
    hook_id = clinic.http.post("/v1/clinics/default/webhooks", json={"url": hook.url}).json()["id"]
    r = clinic.http.delete(f"/v1/clinics/default/webhooks/{hook_id}")
    assert r.status_code == 200 and r.json()["enabled"] is False
    clinic.patient("CUFF-1")
    clinic.post("CUFF-1", reading("systolic_bp", 190, ago(minutes=1)))
    time.sleep(1.0)
    assert hook.requests == []


def test_webhook_management_is_for_admins_and_checks_input(svc: RunningService, clinic: Clinic) -> None:
    assert clinic.http.post("/v1/clinics", json={"id": "north", "name": "North"}).status_code == 201
    with svc.client(svc.token("clinician", clinic="default")) as nurse:
        r = nurse.post("/v1/clinics/default/webhooks", json={"url": "http://127.0.0.1:1/x"})
        assert r.status_code == 403
        assert nurse.get("/v1/clinics/default/webhooks").status_code == 200
        assert nurse.get("/v1/clinics/north/webhooks").status_code == 404
    with svc.client(svc.token("device", device=_device(clinic))) as device:
        assert device.get("/v1/clinics/default/webhooks").status_code == 403
    for body in (
        {"url": "ftp://example.org/x"},
        {"url": "javascript:alert(1)"},
        {"url": "not a url"},
        {"url": "http://127.0.0.1/" + "a" * 3000},
        {"url": "http://127.0.0.1/x", "min_severity": "info"},
        {"url": "http://127.0.0.1/x", "event_types": ["exploded"]},
        {"url": "http://127.0.0.1/x", "event_types": []},
        {"url": "http://127.0.0.1/x", "extra": 1},
        {"url": 5},
        {},
    ):
        r = clinic.http.post("/v1/clinics/default/webhooks", json=body)
        assert r.status_code == 422, (body, r.text)
    r = clinic.http.post("/v1/clinics/nowhere/webhooks", json={"url": "http://127.0.0.1/x"})
    assert r.status_code == 404
    unknown = "00000000-0000-0000-0000-000000000000"
    assert clinic.http.get(f"/v1/clinics/default/webhooks/{unknown}/deliveries").status_code == 404


def _deliveries(clinic: Clinic, hook_id: str) -> list[dict[str, Any]]:
    r = clinic.http.get(f"/v1/clinics/default/webhooks/{hook_id}/deliveries")
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()["deliveries"]
    return rows


def test_a_redirect_is_not_followed(
    svc: RunningService, clinic: Clinic, receiver: Callable[[list[int]], Receiver]
) -> None:
    elsewhere = receiver([])
    redirector = Receiver([302] * 50, location=elsewhere.url)
    try:
        r = clinic.http.post("/v1/clinics/default/webhooks", json={"url": redirector.url})
        assert r.status_code == 201, r.text
        hook_id = r.json()["id"]
        clinic.patient("CUFF-1")
        clinic.post("CUFF-1", reading("systolic_bp", 190, ago(minutes=1)))
        [delivery] = wait_for(
            lambda: [d for d in _deliveries(clinic, hook_id) if d["status"] == "failed"], timeout_s=60
        )
        assert delivery["attempts"] == svc.services.settings.webhook_max_attempts
        assert delivery["last_status_code"] == 302
        assert delivery["last_error"] == "HTTP 302: redirect not followed"
        assert len(redirector.requests) == delivery["attempts"]
        assert elsewhere.requests == []
    finally:
        redirector.close()


def test_a_huge_answer_is_not_read_beyond_the_cap(svc: RunningService, clinic: Clinic) -> None:
    hose = Firehose()
    try:
        r = clinic.http.post("/v1/clinics/default/webhooks", json={"url": hose.url})
        assert r.status_code == 201, r.text
        hook_id = r.json()["id"]
        clinic.patient("CUFF-1")
        clinic.post("CUFF-1", reading("systolic_bp", 190, ago(minutes=1)))
        rows = wait_for(lambda: [d for d in _deliveries(clinic, hook_id) if d["status"] == "delivered"])
        assert rows[0]["attempts"] == 1 and rows[0]["last_status_code"] == 200
        # the worker hung up: the server's writes failed long before the 1 GiB it announced
        assert hose.finished.wait(30) and hose.cut_off.is_set()
        assert hose.requests == 1 and hose.sent < LARGE_BODY_BYTES // 8
    finally:
        hose.close()


def _device(clinic: Clinic) -> str:
    clinic.patient("CUFF-9", "MRN-9")
    return "CUFF-9"

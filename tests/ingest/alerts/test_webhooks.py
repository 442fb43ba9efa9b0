"""Outbound webhooks: a real local HTTP receiver gets signed payloads; 500s are retried; every
attempt is in the delivery log; management is for admins."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ingest.alerts.webhooks import verify
from tests.support.alerts import Clinic, ago, reading
from tests.support.service import RunningService


class Receiver:
    """A real HTTP server that records every POST and answers with the scripted status codes."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    code = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/rpm"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


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


def wait_for(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


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
    assert payload["alert"]["rule"] == "threshold:systolic_bp" and payload["alert"]["severity"] == "critical"
    assert str(payload["event_id"]) == hook.requests[0][0]["x-rpm-event-id"]

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

    rows = wait_for(failed, timeout=60)
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


def _device(clinic: Clinic) -> str:
    clinic.patient("CUFF-9", "MRN-9")
    return "CUFF-9"

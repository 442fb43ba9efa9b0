"""Webhook destinations the service refuses (server-side request forgery, OWASP API7:2023), with
the default settings (no RPM_WEBHOOK_ALLOW_NETWORKS): refused when registered (422 with the reason)
and again at delivery (failed at once, with the reason in the delivery log, nothing sent). Every
address here is a literal or comes from /etc/hosts: no name is looked up elsewhere, and nothing is
sent beyond the loopback interface."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from ingest.alerts import webhooks
from tests.support.alerts import Clinic, ago, reading
from tests.support.service import RunningService
from tests.support.waiting import wait_for_value as wait_for
from tests.support.webhooks import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver([])
    yield r
    r.close()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://169.254.169.254/latest/meta-data/iam/", "169.254.169.254 is a link-local address"),
        ("http://127.0.0.1:5432/", "127.0.0.1 is a loopback address"),
        ("http://localhost:8080/hook", "localhost resolves to 127.0.0.1, a loopback address"),
        ("http://[::1]:8080/hook", "::1 is a loopback address"),
        ("http://[::ffff:7f00:1]/hook", "IPv4-mapped form of a loopback address"),
        ("http://10.1.2.3/hook", "10.1.2.3 is a private address"),
        ("http://192.168.0.10/hook", "192.168.0.10 is a private address"),
        ("http://[fd00::10]/hook", "fd00::10 is a private address"),
        ("http://100.100.100.200/latest/meta-data/", "carrier-grade NAT"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://0.0.0.0:5432/", "unspecified"),
        ("http://2130706433:5432/", "loopback"),  # 127.0.0.1 written as one number
        ("https://pager:secret@93.184.216.34/hook", "credentials in the URL"),
    ],
)
def test_internal_destinations_are_refused_when_registered(
    svc: RunningService, clinic: Clinic, url: str, says: str
) -> None:
    r = clinic.http.post("/v1/clinics/default/webhooks", json={"url": url})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail.startswith("webhook destination refused: ") and says in detail, detail
    assert clinic.http.get("/v1/clinics/default/webhooks").json() == []


def test_a_refused_destination_fails_the_delivery_at_once(
    svc: RunningService, clinic: Clinic, receiver: Receiver
) -> None:
    """Rows that passed registration earlier (before the policy, or while the name pointed
    elsewhere) are judged again at every delivery: a name that now resolves to loopback is refused,
    the delivery fails at its first attempt with the reason, and the server receives nothing."""
    with svc.services.transaction() as conn:
        stored = [
            webhooks.create_webhook(
                conn,
                clinic_id="default",
                url=url,
                description=None,
                min_severity="warning",
                event_types=["opened"],
                created_by="admin-1",
            )["id"]
            for url in (
                f"http://localhost:{receiver.port}/hooks/rpm",
                f"http://pager:secret@127.0.0.1:{receiver.port}/hooks/rpm",
            )
        ]
    clinic.patient("CUFF-1")
    clinic.post("CUFF-1", reading("systolic_bp", 190, ago(minutes=1)))

    def failed(hook_id: str) -> list[dict[str, Any]]:
        rows = clinic.http.get(f"/v1/clinics/default/webhooks/{hook_id}/deliveries").json()["deliveries"]
        return [d for d in rows if d["status"] == "failed"]

    [by_name] = wait_for(lambda: failed(str(stored[0])))
    assert by_name["attempts"] == 1 and by_name["last_status_code"] is None
    assert by_name["last_error"] == (
        "destination refused: localhost resolves to 127.0.0.1, a loopback address,"
        " not in RPM_WEBHOOK_ALLOW_NETWORKS"
    )
    assert [(a["attempt"], a["error"]) for a in by_name["attempt_log"]] == [(1, by_name["last_error"])]
    [with_credentials] = wait_for(lambda: failed(str(stored[1])))
    assert with_credentials["attempts"] == 1
    assert with_credentials["last_error"].startswith("destination refused: credentials in the URL")
    time.sleep(0.5)  # no retry comes
    assert receiver.requests == []
    assert [d["attempts"] for d in failed(str(stored[0]))] == [1]

"""The webhook client enforces the destination policy where it connects: real local servers on
127.0.0.1; the only stand-in is a name resolver answering like a rebinding DNS server would (the
public address it answers first is judged, never connected to)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from ipaddress import ip_address, ip_network

import httpx
import pytest

from ingest.alerts.webhook_client import check_new_destination, drain_capped, webhook_client
from ingest.alerts.webhook_policy import DestinationRefused, IPAddress
from tests.support.webhooks import Firehose, Receiver

LOOPBACK = (ip_network("127.0.0.1/32"),)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver([])
    yield r
    r.close()


def test_a_name_resolving_to_loopback_is_refused_at_connect(receiver: Receiver) -> None:
    with webhook_client(timeout_s=5, allow=(), user_agent="t") as client:
        with pytest.raises(DestinationRefused, match=r"localhost resolves to 127\.0\.0\.1, a loopback"):
            client.post(f"http://localhost:{receiver.port}/hooks/rpm", content=b"{}")
        with pytest.raises(DestinationRefused, match="is a loopback address"):
            client.post(receiver.url, content=b"{}")
    assert receiver.requests == []


def test_the_allow_list_lets_deliveries_reach_its_networks(receiver: Receiver) -> None:
    with webhook_client(timeout_s=5, allow=LOOPBACK, user_agent="t") as client:
        r = client.post(f"http://localhost:{receiver.port}/hooks/rpm", content=b"{}")
    assert r.status_code == 200
    [(headers, body)] = receiver.requests
    assert headers["host"] == f"localhost:{receiver.port}" and body == b"{}"


def test_dns_rebinding_gets_nowhere(receiver: Receiver) -> None:
    """The name answers a public address to the registration check, then loopback: the client
    judges the answer it connects with, so the second answer is refused."""
    answers = [["93.184.216.34"], ["127.0.0.1"]]
    asked: list[str] = []

    def rebinding(host: str, port: int) -> list[IPAddress]:
        asked.append(host)
        return [ip_address(a) for a in answers.pop(0)]

    url = f"http://hooks.rebind.test:{receiver.port}/hooks/rpm"
    check_new_destination(url, (), resolver=rebinding)  # passes: a public address
    with webhook_client(timeout_s=5, allow=(), user_agent="t", resolver=rebinding) as client:
        with pytest.raises(DestinationRefused, match=r"hooks\.rebind\.test resolves to 127\.0\.0\.1"):
            client.post(url, content=b"{}")
    assert asked == ["hooks.rebind.test", "hooks.rebind.test"] and receiver.requests == []


def test_the_connection_goes_to_the_judged_address_with_the_original_host(receiver: Receiver) -> None:
    def pinned(host: str, port: int) -> list[IPAddress]:
        return [ip_address("127.0.0.1")]

    url = f"http://pager.clinic.test:{receiver.port}/hooks/rpm"
    with webhook_client(timeout_s=5, allow=LOOPBACK, user_agent="t", resolver=pinned) as client:
        assert client.post(url, content=b"x").status_code == 200
    assert receiver.requests[0][0]["host"] == f"pager.clinic.test:{receiver.port}"


def test_an_unresolvable_name_is_an_ordinary_connection_failure() -> None:
    def nothing(host: str, port: int) -> list[IPAddress]:
        raise OSError("no such name")

    with webhook_client(timeout_s=5, allow=(), user_agent="t", resolver=nothing) as client:
        with pytest.raises(httpx.ConnectError, match="cannot resolve"):
            client.post("http://gone.test/hook", content=b"{}")
    with pytest.raises(DestinationRefused, match="cannot resolve gone.test"):
        check_new_destination("http://gone.test/hook", (), resolver=nothing)


def test_redirects_are_not_followed(receiver: Receiver) -> None:
    redirector = Receiver([302], location=receiver.url)
    try:
        with webhook_client(timeout_s=5, allow=LOOPBACK, user_agent="t") as client:
            r = client.post(redirector.url, content=b"{}")
        assert r.status_code == 302 and r.headers["location"] == receiver.url
        assert len(redirector.requests) == 1 and receiver.requests == []
    finally:
        redirector.close()


def test_a_huge_answer_is_read_only_up_to_the_cap() -> None:
    hose = Firehose()
    try:
        with webhook_client(timeout_s=10, allow=LOOPBACK, user_agent="t") as client:
            with client.stream("POST", hose.url, content=b"{}") as response:
                read = drain_capped(response, cap=64 * 1024, deadline=time.monotonic() + 60)
            assert response.status_code == 200
        assert 64 * 1024 <= read < 2 * 64 * 1024
        assert hose.finished.wait(30) and hose.cut_off.is_set()
    finally:
        hose.close()

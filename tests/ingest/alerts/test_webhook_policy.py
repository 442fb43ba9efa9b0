"""The webhook destination policy, table-driven and pure: no name is resolved, nothing is sent."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest
from pydantic import ValidationError

from ingest.alerts.webhook_policy import (
    IPAddress,
    address_refusal,
    addresses_refusal,
    destination_refusal,
    url_refusal,
)
from ingest.settings import Settings

REFUSED = [
    # (address, what the reason says)
    ("127.0.0.1", "loopback"),
    ("127.1.2.3", "loopback"),
    ("::1", "loopback"),
    ("169.254.169.254", "link-local"),
    ("169.254.0.1", "link-local"),
    ("fe80::1", "link-local"),
    ("febf::1", "link-local"),
    ("10.0.0.1", "private"),
    ("10.255.255.255", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.1", "private"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.100.100.200", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("64:ff9b::7f00:1", "reserved"),  # NAT64 form of 127.0.0.1
    ("::127.0.0.1", "reserved"),  # IPv4-compatible (deprecated) form
    ("fec0::1", "site-local"),
    ("192.0.2.10", "special-purpose"),  # documentation
    ("198.18.0.1", "special-purpose"),  # benchmarking
    ("2001:db8::1", "special-purpose"),  # documentation
    ("2001::1", "special-purpose"),  # Teredo
    ("0.1.2.3", "special-purpose"),  # "this network"
    # IPv6 forms carrying a refused IPv4 address
    ("::ffff:127.0.0.1", "IPv4-mapped form of a loopback"),
    ("::ffff:169.254.169.254", "IPv4-mapped form of a link-local"),
    ("::ffff:10.1.2.3", "IPv4-mapped form of a private"),
    ("::ffff:100.64.0.1", "IPv4-mapped form of a carrier-grade NAT"),
    ("::ffff:224.0.0.1", "IPv4-mapped form of a multicast"),
    ("::ffff:0.0.0.0", "IPv4-mapped form of an unspecified"),
    ("::ffff:255.255.255.255", "IPv4-mapped form of the broadcast"),
    ("2002:7f00:1::1", "6to4 form of a loopback"),
    ("2002:a9fe:a9fe::1", "6to4 form of a link-local"),
]

ALLOWED = ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:2800::1", "2606:2800:220:1:248:1893:25c8:1946",
           "::ffff:93.184.216.34", "2002:5db8:d822::1"]  # fmt: skip


@pytest.mark.parametrize(("address", "says"), REFUSED)
def test_internal_and_special_addresses_are_refused(address: str, says: str) -> None:
    reason = address_refusal(ip_address(address))
    assert reason is not None and says in reason and str(ip_address(address)) in reason, reason
    assert "RPM_WEBHOOK_ALLOW_NETWORKS" in reason


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_refusal(ip_address(address)) is None


@pytest.mark.parametrize(
    ("address", "allow"),
    [
        ("127.0.0.1", ["127.0.0.1/32"]),
        ("::ffff:127.0.0.1", ["127.0.0.0/8"]),  # the mapped form is allowed by its IPv4 network
        ("10.20.3.4", ["10.20.0.0/16"]),
        ("fd00:1::5", ["fd00:1::/64"]),
        ("169.254.10.10", ["192.168.0.0/16", "169.254.10.0/24"]),
    ],
)
def test_the_allow_list_admits_its_networks(address: str, allow: list[str]) -> None:
    nets = [ip_network(n) for n in allow]
    assert address_refusal(ip_address(address), nets) is None


@pytest.mark.parametrize(
    ("address", "allow"),
    [
        ("10.21.0.1", ["10.20.0.0/16"]),  # next door
        ("127.0.0.2", ["127.0.0.1/32"]),
        ("::1", ["127.0.0.0/8"]),  # IPv6 loopback is not the IPv4 network
        ("169.254.169.254", ["10.0.0.0/8", "fd00::/8"]),
    ],
)
def test_the_allow_list_admits_nothing_else(address: str, allow: list[str]) -> None:
    assert address_refusal(ip_address(address), [ip_network(n) for n in allow]) is not None


def _ips(*addresses: str) -> list[IPAddress]:
    return [ip_address(a) for a in addresses]


def test_every_answer_of_a_name_is_checked() -> None:
    assert addresses_refusal("hooks.example.org", _ips("93.184.216.34", "2606:2800::1")) is None
    # one internal answer among public ones refuses the name: the connection could go there
    reason = addresses_refusal("hooks.example.org", _ips("93.184.216.34", "2606:2800::1", "10.0.0.7"))
    assert reason == (
        "hooks.example.org resolves to 10.0.0.7, a private address, not in RPM_WEBHOOK_ALLOW_NETWORKS"
    )
    reason = addresses_refusal("rebind.example", _ips("::ffff:127.0.0.1", "93.184.216.34"))
    assert reason is not None and "loopback" in reason
    assert addresses_refusal("nowhere.example", []) == "nowhere.example has no address"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://example.org/x", "scheme 'ftp'"),
        ("file:///etc/passwd", "scheme 'file'"),
        ("gopher://example.org/", "scheme 'gopher'"),
        ("http://user:secret@example.org/hook", "credentials"),
        ("https://token@example.org/hook", "credentials"),
        ("http:///nohost", "no host"),
    ],
)
def test_urls_refused_for_their_form(url: str, says: str) -> None:
    reason = url_refusal(url)
    assert reason is not None and says in reason, reason


def test_a_whole_decision() -> None:
    public = _ips("93.184.216.34")
    assert destination_refusal("https://hooks.example.org/rpm", public) is None
    assert destination_refusal("http://93.184.216.34:8080/rpm", public) is None
    assert destination_refusal("https://[2606:2800::1]/rpm", _ips("2606:2800::1")) is None
    reason = destination_refusal("http://169.254.169.254/latest/meta-data/", _ips("169.254.169.254"))
    assert reason is not None and reason.startswith("169.254.169.254 is a link-local address")
    reason = destination_refusal("http://[::ffff:7f00:1]:5432/", _ips("::ffff:7f00:1"))
    assert reason is not None and "loopback" in reason
    reason = destination_refusal("http://localhost:5432/", _ips("127.0.0.1", "::1"))
    assert reason is not None and reason.startswith("localhost resolves to 127.0.0.1, a loopback")
    assert destination_refusal("http://user@93.184.216.34/", public) is not None
    allow = [ip_network("127.0.0.1/32"), ip_network("::1/128")]
    assert destination_refusal("http://localhost:8080/", _ips("127.0.0.1", "::1"), allow) is None


def test_the_allow_list_setting_reads_comma_separated_networks() -> None:
    s = Settings(_env_file=None, webhook_allow_networks=" 10.20.0.0/16, 127.0.0.1 ,fd00:1::/64,")  # type: ignore[call-arg]
    assert s.webhook_allow_networks == (
        ip_network("10.20.0.0/16"),
        ip_network("127.0.0.1/32"),
        ip_network("fd00:1::/64"),
    )
    assert Settings(_env_file=None).webhook_allow_networks == ()  # type: ignore[call-arg]
    for bad in ("10.0.0.1/8", "pager.clinic.local", "10.0.0.0/33"):
        with pytest.raises(ValidationError, match="not a network"):
            Settings(_env_file=None, webhook_allow_networks=bad)  # type: ignore[call-arg]

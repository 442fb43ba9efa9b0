"""Broker URLs: one parser for the service (RPM_MQTT_URL) and the gateway (--mqtt-url). What is
accepted, what is refused (with the reason), and that passwords never reach the logs."""

from __future__ import annotations

import pytest

from devices.errors import BrokerConfigError
from devices.mqtt.address import BrokerAddress, parse_broker_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1", BrokerAddress("127.0.0.1", 1883, False, None, None)),
        ("mqtts://broker.example", BrokerAddress("broker.example", 8883, True, None, None)),
        ("mqtt://hub%2F17:p%40ss@b:1884", BrokerAddress("b", 1884, False, "hub/17", "p@ss")),
        ("mqtts://[::1]:8884", BrokerAddress("::1", 8884, True, None, None)),
        # what the service's parser accepted
        ("mqtts://broker.example.org", BrokerAddress("broker.example.org", 8883, True, None, None)),
        ("mqtt://svc:s%40cr%3At@host:1884", BrokerAddress("host", 1884, False, "svc", "s@cr:t")),
        ("mqtt://svc@host", BrokerAddress("host", 1883, False, "svc", None)),
        ("mqtt://[::1]:1883/", BrokerAddress("::1", 1883, False, None, None)),
        # the union of both: edges of the rules
        ("mqtt://host:65535", BrokerAddress("host", 65535, False, None, None)),
        ("mqtt://host:1", BrokerAddress("host", 1, False, None, None)),
        ("mqtts://Broker.Example", BrokerAddress("broker.example", 8883, True, None, None)),
        ("mqtt://u:@host", BrokerAddress("host", 1883, False, "u", "")),  # the empty password
        (
            "mqtts://u%3Aser:p%2Fw%25d%20x@[2001:db8::5]",
            BrokerAddress("2001:db8::5", 8883, True, "u:ser", "p/w%d x"),
        ),
        ("mqtt://hub-17:pa:ss@h", BrokerAddress("h", 1883, False, "hub-17", "pa:ss")),
    ],
)
def test_accepted(url: str, expected: BrokerAddress) -> None:
    assert parse_broker_url(url) == expected


@pytest.mark.parametrize(
    ("url", "host", "port", "tls", "user", "password"),
    [
        ("mqtt://127.0.0.1", "127.0.0.1", 1883, False, None, None),
        ("mqtts://broker.example.org", "broker.example.org", 8883, True, None, None),
        ("mqtt://svc:s%40cr%3At@host:1884", "host", 1884, False, "svc", "s@cr:t"),
        ("mqtt://svc@host", "host", 1883, False, "svc", None),
        ("mqtt://[::1]:1883/", "::1", 1883, False, None, None),
    ],
)
def test_broker_urls(
    url: str, host: str, port: int, tls: bool, user: str | None, password: str | None
) -> None:
    a = parse_broker_url(url)
    assert (a.host, a.port, a.tls, a.username, a.password) == (host, port, tls, user, password)
    assert "s@cr" not in a.display and "s@cr" not in repr(a)


@pytest.mark.parametrize(
    "url",
    [
        # refused by the gateway's parser
        "", "127.0.0.1:1883", "http://broker", "mqtt://", "mqtt://host:99999", "mqtt://host:port",
        "mqtt://[::1", "mqtt://" + "h" * 5000 + ":-1",
        # refused by the service's parser
        "http://host", "mqtt://host:0", "mqtt://host:abc", "mqtt://host/path", "mqtt://host?x=1",
        "mqtt://host#frag", "mqtt:host", "tcp://host:1883",
        # the union: the aliases only the gateway took, other schemes, ports out of range
        "ssl://host:8883", "ws://host:8080", "wss://host", "mqtt+ssl://host", "mqtt://host:65536",
        "mqtt://host:-1", "mqtt://user:pw@", "mqtt://host:1883/rpm", "MQTT://host", "Mqtts://host",
        " mqtt://host",
    ],
)
def test_refused(url: str) -> None:
    with pytest.raises(BrokerConfigError) as exc:
        parse_broker_url(url)
    assert exc.value.setting == "url"
    assert exc.value.reason.startswith("broker URL ") and len(exc.value.reason) < 300


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("tcp://host", "must start with mqtt:// or mqtts://"),
        ("mqtt://host:99999", "not a valid URL"),
        ("mqtt://host:0", "port must be 1-65535"),
        ("mqtt://:1883", "names no host"),
        ("mqtt://host/x", "takes no path, query or fragment"),
    ],
)
def test_the_reason_says_what_is_wrong(url: str, reason: str) -> None:
    with pytest.raises(BrokerConfigError, match=reason):
        parse_broker_url(url)


def test_the_redacted_form_has_no_password() -> None:
    address = parse_broker_url("mqtts://hub-17:s3cret@broker.example:8883")
    assert address.redacted() == "mqtts://hub-17@broker.example:8883"
    assert "s3cret" not in address.redacted()
    assert address.display == "mqtts://broker.example:8883"  # no credentials at all
    assert "s3cret" not in repr(address)


def test_an_ipv6_host_is_bracketed_for_display() -> None:
    assert parse_broker_url("mqtts://[::1]:8884").display == "mqtts://[::1]:8884"
    assert parse_broker_url("mqtts://u:p@[::1]:8884").redacted() == "mqtts://u@[::1]:8884"
    assert parse_broker_url("mqtt://h").display == "mqtt://h:1883"

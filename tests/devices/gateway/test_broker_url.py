"""Broker URLs: what is accepted, what is refused, and that passwords never reach the logs."""

from __future__ import annotations

import pytest

from devices.errors import ConfigurationError
from devices.gateway.mqtt_paho import BrokerAddress, parse_broker_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1", BrokerAddress("127.0.0.1", 1883, False, None, None)),
        ("mqtts://broker.example", BrokerAddress("broker.example", 8883, True, None, None)),
        ("mqtt://hub%2F17:p%40ss@b:1884", BrokerAddress("b", 1884, False, "hub/17", "p@ss")),
        ("mqtts://[::1]:8884", BrokerAddress("::1", 8884, True, None, None)),
    ],
)
def test_accepted(url: str, expected: BrokerAddress) -> None:
    assert parse_broker_url(url) == expected


@pytest.mark.parametrize(
    "url",
    ["", "127.0.0.1:1883", "http://broker", "mqtt://", "mqtt://host:99999", "mqtt://host:port",
     "mqtt://[::1", "mqtt://" + "h" * 5000 + ":-1"],
)
def test_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_broker_url(url)


def test_the_redacted_form_has_no_password() -> None:
    address = parse_broker_url("mqtts://hub-17:s3cret@broker.example:8883")
    assert address.redacted() == "mqtts://hub-17@broker.example:8883"
    assert "s3cret" not in address.redacted()

"""Pure parts of the consumer: topic -> device id, the subscription, RPM_MQTT_URL and TLS options."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from ingest.errors import ConfigurationError, TopicRejected
from ingest.mqtt.config import broker_options, parse_url
from ingest.mqtt.delivery import to_delivery
from ingest.mqtt.topics import device_from_topic, subscription
from ingest.settings import Settings

NOW = datetime(2026, 11, 25, tzinfo=UTC)


@pytest.mark.parametrize(
    ("prefix", "topic", "device"),
    [
        ("rpm", "rpm/CUFF-1/readings", "CUFF-1"),
        ("rpm", "rpm/F0F1F2F3F4F5/readings", "F0F1F2F3F4F5"),
        ("rpm", "rpm/a.b_c:d-e/readings", "a.b_c:d-e"),
        ("site/rpm", "site/rpm/X/readings", "X"),
        ("rpm", "rpm/" + "x" * 64 + "/readings", "x" * 64),
    ],
)
def test_device_id_comes_from_the_topic(prefix: str, topic: str, device: str) -> None:
    assert device_from_topic(prefix, topic) == device


@pytest.mark.parametrize(
    "topic",
    [
        "rpm//readings",  # empty id
        "rpm/" + "x" * 65 + "/readings",  # too long
        "rpm/bad id/readings",
        "rpm/CUFF-1\n/readings",
        "rpm/caf\u00e9/readings",
        "rpm/a/b/readings",  # two levels
        "rpm/CUFF-1/reading",
        "rpm/CUFF-1/readings/extra",
        "other/CUFF-1/readings",
        "rpm/readings",
        "rpmx/CUFF-1/readings",
        "rpm/\u0000/readings",
        "rpm/" + "\U0001f600" * 10 + "/readings",
        "",
    ],
)
def test_hostile_topics_are_refused_with_a_reason(topic: str) -> None:
    with pytest.raises(TopicRejected) as exc:
        device_from_topic("rpm", topic)
    assert exc.value.reason and len(exc.value.reason) < 300


def test_refused_topic_becomes_a_delivery_to_dead_letter() -> None:
    long_topic = ("rpm/" + "y" * 5000 + "/readings").encode()
    for raw_topic, expect_device in [(b"rpm/OK-1/readings", "OK-1"), (b"rpm/\xff\xfe/readings", None),
                                     (long_topic, None), (b"rpm/a\x00b/readings", None)]:
        d = to_delivery(prefix="rpm", topic=raw_topic, payload=bytearray(b"{}"), mid=7, qos=1, generation=3,
                        received_at=NOW)
        assert d.envelope.device_id == expect_device
        assert (d.refused is None) == (expect_device is not None)
        assert d.envelope.raw == b"{}" and isinstance(d.envelope.raw, bytes)
        assert "\x00" not in (d.envelope.topic or "")
        assert d.refused is None or len(d.refused) < 300


def test_subscription_plain_and_shared() -> None:
    assert subscription("rpm", None) == "rpm/+/readings"
    assert subscription("rpm", "ingest") == "$share/ingest/rpm/+/readings"
    for bad in ("", "a/b", "a+b", "#", "x" * 65, "g\n"):
        with pytest.raises(ConfigurationError):
            subscription("rpm", bad)


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
    a = parse_url(url)
    assert (a.host, a.port, a.tls, a.username, a.password) == (host, port, tls, user, password)
    assert "s@cr" not in a.display and "s@cr" not in repr(a)


@pytest.mark.parametrize(
    "url",
    ["http://host", "mqtt://", "mqtt://host:0", "mqtt://host:99999", "mqtt://host:abc", "mqtt://host/path",
     "mqtt://host?x=1", "mqtt://host#frag", "mqtt:host", "tcp://host:1883", ""],
)
def test_bad_broker_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_url(url)


def _settings(**kw: object) -> Settings:
    return Settings(_env_file=None, database_url="postgresql://x@localhost/db", **kw)  # type: ignore[call-arg, arg-type]


def test_options_from_settings(tmp_path: Path) -> None:
    o = broker_options(_settings(mqtt_url="mqtt://u:p@h:1", mqtt_protocol="3.1.1", mqtt_receive_maximum=50))
    assert (o.address.username, o.address.password, o.protocol, o.receive_maximum) == ("u", "p", "3.1.1", 50)
    o = broker_options(
        _settings(mqtt_url="mqtt://u:p@h:1", mqtt_username="svc", mqtt_password=SecretStr("pw"))
    )
    assert (o.address.username, o.address.password) == ("svc", "pw")
    assert o.ssl_context() is None


def test_tls_options_are_checked_at_start_up(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    bad = [
        {"mqtt_url": "mqtt://h", "mqtt_ca_file": garbage},  # TLS files without mqtts://
        {"mqtt_url": "mqtts://h", "mqtt_ca_file": missing},
        {"mqtt_url": "mqtts://h", "mqtt_ca_file": garbage},
        {"mqtt_url": "mqtts://h", "mqtt_key_file": garbage},  # key without certificate
        {"mqtt_url": "mqtts://h", "mqtt_cert_file": garbage},
        {"mqtt_url": "mqtt://h", "mqtt_password": SecretStr("pw")},  # password without user
        {"mqtt_url": "mqtt://h", "mqtt_reconnect_min_s": 10, "mqtt_reconnect_max_s": 5},
        {"mqtt_url": None},
    ]
    for kw in bad:
        with pytest.raises(ConfigurationError):
            broker_options(_settings(**kw))
    ctx = broker_options(_settings(mqtt_url="mqtts://h", mqtt_tls_insecure=True)).ssl_context()
    assert ctx is not None and ctx.check_hostname is False

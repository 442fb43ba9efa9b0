"""Pure parts of the consumer: topic -> device id, the subscription, the RPM_MQTT_* settings.

The broker URL and option rules themselves are tested in ``tests/devices/mqtt/``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from ingest.errors import ConfigurationError, TopicRejected
from ingest.mqtt.config import options_from_settings
from ingest.mqtt.delivery import to_delivery
from ingest.mqtt.topics import device_from_topic, subscription
from ingest.settings import Settings, load_settings

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


def _settings(**kw: object) -> Settings:
    return Settings(_env_file=None, database_url="postgresql://x@localhost/db", **kw)  # type: ignore[call-arg, arg-type]


def test_options_from_settings(tmp_path: Path) -> None:
    o = options_from_settings(
        _settings(mqtt_url="mqtt://u:p@h:1", mqtt_protocol="3.1.1", mqtt_receive_maximum=50)
    )
    assert (o.address.username, o.address.password, o.protocol, o.receive_maximum) == ("u", "p", "3.1.1", 50)
    o = options_from_settings(
        _settings(mqtt_url="mqtt://u:p@h:1", mqtt_username="svc", mqtt_password=SecretStr("pw"))
    )
    assert (o.address.username, o.address.password) == ("svc", "pw")
    assert o.ssl_context() is None


def test_tls_options_are_checked_at_start_up(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    bad: list[dict[str, object]] = [
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
            options_from_settings(_settings(**kw))
    ctx = options_from_settings(_settings(mqtt_url="mqtts://h", mqtt_tls_insecure=True)).ssl_context()
    assert ctx is not None and ctx.check_hostname is False


@pytest.mark.parametrize(
    ("kw", "variable"),
    [
        ({"mqtt_url": "mqtt://h", "mqtt_password": SecretStr("pw")}, "RPM_MQTT_PASSWORD"),
        ({"mqtt_url": "mqtts://h", "mqtt_ca_file": Path("/nonexistent/ca.pem")}, "RPM_MQTT_CA_FILE"),
        (
            {"mqtt_url": "mqtt://h", "mqtt_reconnect_min_s": 10, "mqtt_reconnect_max_s": 5},
            "RPM_MQTT_RECONNECT_MIN_S",
        ),
        ({"mqtt_url": None}, "RPM_MQTT_URL"),
    ],
)
def test_refusals_name_the_variable(kw: dict[str, object], variable: str) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        options_from_settings(_settings(**kw))


@pytest.mark.parametrize("url", ["tcp://host:1883", "mqtt://host:0", "MQTT://host", "mqtt://host/path"])
def test_a_bad_url_is_refused_when_the_settings_load(url: str) -> None:
    with pytest.raises(ValidationError, match="broker URL"):
        _settings(mqtt_url=url)
    with pytest.raises(ConfigurationError, match="RPM_MQTT_URL: Value error, broker URL"):
        load_settings(_env_file=None, database_url="postgresql://x@localhost/db", mqtt_url=url)
    with pytest.raises(ConfigurationError, match="RPM_MQTT_URL: broker URL"):
        options_from_settings(_settings().model_copy(update={"mqtt_url": url}))  # as simulate does


def test_url_credentials_and_the_separate_settings() -> None:
    o = options_from_settings(_settings(mqtt_url="mqtts://u%40x:p%3Aw@[::1]:8884"))
    a = o.address
    assert (a.host, a.port, a.username, a.password) == ("::1", 8884, "u@x", "p:w")
    o = options_from_settings(_settings(mqtt_url="mqtts://svc@h", mqtt_password=SecretStr("s3cret")))
    assert (o.address.username, o.address.password) == ("svc", "s3cret")
    assert "s3cret" not in repr(o)
    o = options_from_settings(_settings(mqtt_url="mqtt://h", mqtt_username="svc"), client_id="other")
    assert (o.address.username, o.address.password, o.client_id) == ("svc", None, "other")

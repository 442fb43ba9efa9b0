"""Broker options: the rules every MQTT client of the project follows (credentials, TLS files,
protocol version, client id), each refusal naming the setting at fault."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from devices.errors import BrokerConfigError
from devices.mqtt.options import broker_options
from tests.support.pki import make_pki


def test_defaults_and_overrides() -> None:
    o = broker_options("mqtt://u:p@h:1", client_id="c", protocol="3.1.1", receive_maximum=50)
    assert (o.address.username, o.address.password, o.protocol, o.receive_maximum) == ("u", "p", "3.1.1", 50)
    assert (o.client_id, o.keepalive_s, o.reconnect_min_s, o.reconnect_max_s) == ("c", 30, 1, 30)
    assert o.ssl_context() is None
    o = broker_options("mqtt://u:p@h:1", client_id="c", username="svc", password="pw")
    assert (o.address.username, o.address.password, o.protocol) == ("svc", "pw", "5")
    o = broker_options("mqtt://h", client_id="c", username="svc", password="p@ss:w/rd")
    assert (o.address.username, o.address.password) == ("svc", "p@ss:w/rd")  # no URL encoding needed
    assert "p@ss" not in repr(o) and "p@ss" not in o.address.display


@pytest.mark.parametrize(
    ("url", "kw", "setting"),
    [
        ("mqtt://h", {"password": "pw"}, "password"),  # a password without a user
        ("mqtt://:pw@h", {}, "password"),
        ("mqtt://h", {"protocol": "3.1"}, "protocol"),
        ("mqtt://h", {"protocol": "5.0"}, "protocol"),
        ("mqtt://h", {"protocol": "v5"}, "protocol"),
        ("mqtt://h", {"client_id": ""}, "client_id"),
        ("mqtt://h", {"client_id": "a\x00b"}, "client_id"),
        ("mqtt://h", {"client_id": "x" * 70_000}, "client_id"),
        ("mqtt://h", {"reconnect_min_s": 10, "reconnect_max_s": 5}, "reconnect"),
        ("mqtt://h", {"reconnect_min_s": 0}, "reconnect"),
        ("ws://h", {}, "url"),
    ],
)
def test_settings_that_do_not_fit_are_refused(url: str, kw: dict[str, object], setting: str) -> None:
    kw.setdefault("client_id", "c")
    with pytest.raises(BrokerConfigError) as exc:
        broker_options(url, **kw)  # type: ignore[arg-type]
    assert exc.value.setting == setting and exc.value.reason


def test_tls_files_are_checked_at_start_up(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    make_pki(pki)
    missing = tmp_path / "nope.pem"
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    bad = [
        ("mqtt://h", {"ca_file": pki / "ca.crt"}, "ca_file"),  # TLS files without mqtts://
        ("mqtt://h", {"cert_file": pki / "client.crt", "key_file": pki / "client.key"}, "cert_file"),
        ("mqtts://h", {"ca_file": missing}, "ca_file"),
        ("mqtts://h", {"cert_file": missing, "key_file": pki / "client.key"}, "cert_file"),
        ("mqtts://h", {"cert_file": pki / "client.crt", "key_file": missing}, "key_file"),
        ("mqtts://h", {"ca_file": tmp_path}, "ca_file"),  # a directory, not a file
        ("mqtts://h", {"ca_file": garbage}, "ca_file"),
        ("mqtts://h", {"key_file": pki / "client.key"}, "key_file"),  # key without certificate
        ("mqtts://h", {"cert_file": garbage}, "cert_file"),
        ("mqtts://h", {"cert_file": pki / "client.crt"}, "cert_file"),  # no key anywhere
        ("mqtts://h", {"cert_file": pki / "client.crt", "key_file": pki / "server.key"}, "cert_file"),
    ]
    for url, kw, setting in bad:
        with pytest.raises(BrokerConfigError) as exc:
            broker_options(url, client_id="c", **kw)  # type: ignore[arg-type]
        assert exc.value.setting == setting, (kw, exc.value)
        if "nope.pem" in str(kw):
            assert str(missing) in exc.value.reason


def test_a_working_tls_configuration(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    make_pki(pki)
    o = broker_options(
        "mqtts://hub:pw@broker.example", client_id="c",
        ca_file=pki / "ca.crt", cert_file=pki / "client.crt", key_file=pki / "client.key",
    )
    ctx = o.ssl_context()
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.check_hostname is True and ctx.verify_mode == ssl.CERT_REQUIRED
    (pki / "both.pem").write_bytes((pki / "client.crt").read_bytes() + (pki / "client.key").read_bytes())
    assert broker_options("mqtts://h", client_id="c", cert_file=pki / "both.pem").ssl_context() is not None
    ctx = broker_options("mqtts://h", client_id="c", tls_insecure=True).ssl_context()
    assert ctx is not None and ctx.check_hostname is False and ctx.verify_mode == ssl.CERT_REQUIRED

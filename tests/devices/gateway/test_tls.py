"""mqtts:// with a per-gateway client certificate, and a broker that refuses the gateway's
credentials (readings stay queued until it is let in)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devices.gateway.mqtt_paho import BrokerSettings
from devices.gateway.runner import Gateway, GatewaySettings
from tests.devices.ble_emulated.support import run
from tests.devices.gateway.support import Subscriber, entries
from tests.support.mosquitto import Mosquitto
from tests.support.service import free_port

_KEY = serialization.PrivateFormat.PKCS8


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, _KEY, serialization.NoEncryption())
    )


def make_pki(directory: Path) -> None:
    """ca.crt, server.{crt,key} for 127.0.0.1 and client.{crt,key} for "home-hub-tls"."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway test CA")])

    def issue(subject: str, key: ec.EllipticCurvePrivateKey, *, ca: bool = False,
              ip: str | None = None) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ip is not None:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False
            )
        return builder.sign(ca_key, hashes.SHA256())

    (directory / "ca.crt").write_bytes(
        issue("gateway test CA", ca_key, ca=True).public_bytes(serialization.Encoding.PEM)
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    client_key = ec.generate_private_key(ec.SECP256R1())
    _write(directory / "server", issue("127.0.0.1", server_key, ip="127.0.0.1"), server_key)
    _write(directory / "client", issue("home-hub-tls", client_key), client_key)


def tls_broker(root: Path) -> tuple[Mosquitto, int]:
    pki = root / "pki"
    make_pki(pki)
    plain, secure = free_port(), free_port()
    listener = (
        ("user root\n" if os.geteuid() == 0 else "")
        + "per_listener_settings true\n"
        f"listener {plain} 127.0.0.1\nallow_anonymous true\n"
        f"listener {secure} 127.0.0.1\nallow_anonymous false\n"
        f"cafile {pki}/ca.crt\ncertfile {pki}/server.crt\nkeyfile {pki}/server.key\n"
        f"require_certificate true\nuse_identity_as_username true\n"
    )
    return Mosquitto(root / "broker", port=plain, listener=listener), secure


def test_publishing_over_tls_with_a_client_certificate(tmp_path: Path) -> None:
    broker, secure = tls_broker(tmp_path)
    pki = tmp_path / "pki"
    settings = GatewaySettings(
        gateway_id="home-hub-tls",
        data_dir=tmp_path / "hub",
        broker=BrokerSettings(
            url=f"mqtts://127.0.0.1:{secure}", client_id="home-hub-tls",
            ca_file=pki / "ca.crt", cert_file=pki / "client.crt", key_file=pki / "client.key",
        ),
        tz=dt.UTC,
        topic_prefix="secure",
    )

    async def scenario() -> None:
        gateway = Gateway(settings, None)
        with Subscriber(broker.url, "secure/+/readings") as sub:
            await gateway.queue.enqueue(entries(3), None, now=dt.datetime.now(dt.UTC))
            task = asyncio.create_task(gateway.run())
            try:
                got = await asyncio.to_thread(sub.wait_for, 3)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        assert [r["device_id"] for r in got] == ["DEV0001"] * 3

    with broker:
        run(scenario())


def test_refused_credentials_keep_readings_queued(tmp_path: Path) -> None:
    passwords = tmp_path / "passwd"
    passwords.write_text("")  # nobody may connect on the password listener
    broker = Mosquitto(
        tmp_path / "broker",
        extra=f"allow_anonymous false\npassword_file {passwords}\n"
        + ("user root\n" if os.geteuid() == 0 else ""),
        listener=None,
    )
    settings = GatewaySettings(
        gateway_id="hub-refused",
        data_dir=tmp_path / "hub",
        broker=BrokerSettings(url=f"mqtt://hub:wrong@127.0.0.1:{broker.port}", client_id="hub-refused"),
        tz=dt.UTC,
    )

    async def scenario() -> None:
        gateway = Gateway(settings, None)
        await gateway.queue.enqueue(entries(5), None, now=dt.datetime.now(dt.UTC))
        task = asyncio.create_task(gateway.run())
        try:
            await asyncio.sleep(1.5)  # a few refused connection attempts
            stats = await gateway.queue.stats()
            assert (stats.readings, stats.published) == (5, 0)
            assert gateway.publisher.messages_sent == 0
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    with broker:
        run(scenario())

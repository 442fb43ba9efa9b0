"""Secrets in the settings: placeholders refused outside development, each secret readable from a
file of RPM_SECRETS_DIR (compose ``secrets:``), RPM_DATABASE_PASSWORD kept out of the URL."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from psycopg.conninfo import conninfo_to_dict

from ingest.errors import ConfigurationError
from ingest.placeholders import placeholder_reason, url_password
from ingest.settings import Settings, load_settings

DB = "postgresql://rpm@db:5432/rpm"
MQTT = "mqtt://rpm-service@mosquitto:1883"

#: every secret setting, as the keyword arguments that put ``value`` in it
SECRET_SETTINGS: dict[str, Callable[[str], dict[str, object]]] = {
    "RPM_DATABASE_URL": lambda v: {"database_url": f"postgresql://rpm:{quote(v, safe='')}@db:5432/rpm"},
    "RPM_DATABASE_PASSWORD": lambda v: {"database_password": v},
    "RPM_MQTT_URL": lambda v: {"mqtt_url": f"mqtt://rpm-service:{quote(v, safe='')}@mosquitto:1883"},
    "RPM_MQTT_PASSWORD": lambda v: {"mqtt_password": v},
    "RPM_FHIR_TOKEN": lambda v: {"fhir_auth": "bearer", "fhir_token": v},
    "RPM_SMART_CLIENT_SECRET": lambda v: {"smart_client_secret": v},
}
PLACEHOLDERS = [
    "change-me-database-password",  # deploy/env.example used to ship these
    "change-me-broker-password-of-the-service",
    "CHANGE-ME",
    "changeme123",
    "change_me",
    "replace-me",
    "password",
    "Secret",
    "changeit",
    "",
    "   ",
    "<your password>",
    "${POSTGRES_PASSWORD}",
    "xxxxxxxx",
]


@pytest.fixture(autouse=True)
def _no_secrets_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An empty RPM_SECRETS_DIR of this test's own: no file of the host's /run/secrets counts."""
    empty = tmp_path / "no-secrets"
    empty.mkdir()
    monkeypatch.setenv("RPM_SECRETS_DIR", str(empty))
    for name in ("RPM_DATABASE_PASSWORD", "RPM_MQTT_PASSWORD", "RPM_FHIR_TOKEN", "RPM_ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)


def production(**kw: object) -> Settings:
    base: dict[str, object] = {"environment": "production", "database_url": DB, "mqtt_url": MQTT}
    return load_settings(_env_file=None, **{**base, **kw})


@pytest.mark.parametrize("value", PLACEHOLDERS)
@pytest.mark.parametrize("variable", sorted(SECRET_SETTINGS))
def test_a_placeholder_secret_is_refused_in_production_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        production(**SECRET_SETTINGS[variable](value))
    message = str(refused.value)
    assert f"{variable}" in message and "placeholder" in message
    assert "RPM_ENVIRONMENT=development" in message  # says how placeholders would be accepted
    if value.startswith("change-me-"):
        assert value not in message  # the reason names the pattern, not the whole value


@pytest.mark.parametrize("variable", sorted(SECRET_SETTINGS))
def test_a_real_secret_is_accepted_in_production(variable: str) -> None:
    real = secrets.token_urlsafe(24)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        settings = production(**SECRET_SETTINGS[variable](real))
    assert settings.environment == "production"
    assert real in {value for _, value in settings.secret_values()}


@pytest.mark.parametrize("variable", sorted(SECRET_SETTINGS))
def test_development_accepts_a_placeholder_with_a_warning(variable: str) -> None:
    kw: dict[str, object] = {"database_url": DB, "mqtt_url": MQTT, **SECRET_SETTINGS[variable]("change-me")}
    with pytest.warns(UserWarning, match=f"{variable}.*RPM_ENVIRONMENT=development"):
        settings = load_settings(_env_file=None, **kw)
    assert settings.environment == "development"


def test_the_embedded_defaults_and_urls_without_passwords_have_no_secret_to_check() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_settings(_env_file=None).secret_values() == []
        assert production().secret_values() == []  # passwords from elsewhere (files, certificates)


def test_every_secret_setting_is_checked() -> None:
    """A SecretStr setting added later must join the placeholder check (and SECRET_SETTINGS)."""
    secret_fields = {
        f"RPM_{name.upper()}"
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation)
    }
    assert secret_fields <= set(SECRET_SETTINGS)
    checked = {
        variable.split(" ")[0]
        for variable, _ in production(
            **{k: v for make in SECRET_SETTINGS.values() for k, v in make("a-real-secret-0123").items()}
        ).secret_values()
    }
    assert checked == set(SECRET_SETTINGS)


# --- RPM_DATABASE_PASSWORD ------------------------------------------------------------------


def test_the_database_password_goes_into_the_url_encoded() -> None:
    password = "p@ss:w/rd?#% é" + secrets.token_hex(4)
    settings = production(database_password=password)
    assert settings.database_url is not None
    params = conninfo_to_dict(settings.database_url)
    assert params["password"] == password  # what libpq will send
    assert (params["user"], params["host"], params["port"], params["dbname"]) == ("rpm", "db", "5432", "rpm")
    assert url_password(settings.database_url) == password
    # it replaces a password written in the URL
    replaced = production(database_url="postgresql://rpm:old-one-1234@db/rpm", database_password=password)
    assert replaced.database_url is not None
    assert conninfo_to_dict(replaced.database_url)["password"] == password


def test_a_database_password_without_a_database_url_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="RPM_DATABASE_PASSWORD needs RPM_DATABASE_URL"):
        load_settings(_env_file=None, database_password="a-real-secret-0123")


# --- secret files (RPM_SECRETS_DIR, /run/secrets) -----------------------------------------------


@pytest.fixture
def secrets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "run-secrets"
    directory.mkdir()
    monkeypatch.setenv("RPM_SECRETS_DIR", str(directory))
    return directory


def test_secrets_are_read_from_files_named_after_their_variables(secrets_dir: Path) -> None:
    db_password, mqtt_password, token = (secrets.token_urlsafe(24) for _ in range(3))
    (secrets_dir / "rpm_database_password").write_text(db_password + "\n")  # as compose mounts it
    (secrets_dir / "rpm_mqtt_password").write_text(mqtt_password + "\n")
    (secrets_dir / "RPM_FHIR_TOKEN").write_text(token)  # the case of the name does not matter
    settings = production(fhir_auth="bearer")
    assert settings.database_url is not None
    assert conninfo_to_dict(settings.database_url)["password"] == db_password
    assert settings.mqtt_password is not None and settings.mqtt_password.get_secret_value() == mqtt_password
    assert settings.fhir_token is not None and settings.fhir_token.get_secret_value() == token


def test_a_placeholder_in_a_secret_file_is_refused(secrets_dir: Path) -> None:
    (secrets_dir / "rpm_mqtt_password").write_text("change-me-broker-password-of-the-service\n")
    with pytest.raises(ConfigurationError, match="RPM_MQTT_PASSWORD is a placeholder"):
        production()


def test_the_environment_wins_over_a_secret_file(secrets_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (secrets_dir / "rpm_mqtt_password").write_text("from-the-file-0123456")
    monkeypatch.setenv("RPM_MQTT_PASSWORD", "from-the-environment-0123")
    settings = production()
    assert settings.mqtt_password is not None
    assert settings.mqtt_password.get_secret_value() == "from-the-environment-0123"


def test_a_missing_secrets_dir_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RPM_SECRETS_DIR", str(tmp_path / "absent"))
    with pytest.raises(ConfigurationError, match="RPM_SECRETS_DIR=.*is not a directory"):
        production()


# --- the placeholder rule itself ---------------------------------------------------------------


@pytest.mark.parametrize("value", PLACEHOLDERS)
def test_placeholders_are_recognised(value: str) -> None:
    assert placeholder_reason(value) is not None


@pytest.mark.parametrize(
    "value",
    ["Zq3vX9-kP2mL8wR4tY6uB1nC", "9f8e7d6c5b4a39281706f5e4d3c2b1a0", "correct horse", "passwords-are-hard"],
)
def test_real_secrets_are_not_placeholders(value: str) -> None:
    assert placeholder_reason(value) is None


@pytest.mark.parametrize(
    ("url", "password"),
    [
        ("postgresql://rpm@db/rpm", None),
        ("postgresql://db/rpm", None),
        ("postgresql://rpm:@db/rpm", ""),
        ("mqtt://svc:p%40ss%3Aword@broker:1883", "p@ss:word"),
        ("mqtts://svc:a:b@broker:8883", "a:b"),
    ],
)
def test_url_password(url: str, password: str | None) -> None:
    assert url_password(url) == password


def test_an_unreadable_secret_file_is_a_configuration_error(secrets_dir: Path) -> None:
    (secrets_dir / "rpm_mqtt_password").write_bytes(b"\xff\xfe not text")
    with pytest.raises(ConfigurationError, match="secret file of RPM_MQTT_PASSWORD in .*not UTF-8"):
        production()


def test_the_service_refuses_to_start_with_a_placeholder_and_says_why(tmp_path: Path) -> None:
    """What an operator sees: one line naming the variable, no traceback, a non-zero exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPM_")}
    env.update(
        RPM_ENVIRONMENT="production",
        RPM_DATABASE_URL=DB,
        RPM_MQTT_URL=MQTT,
        RPM_DATA_DIR=str(tmp_path),
        RPM_SECRETS_DIR=str(tmp_path),
        RPM_DATABASE_PASSWORD="change-me-database-password",
    )
    rpm_ingest = Path(sys.executable).parent / "rpm-ingest"
    result = subprocess.run(
        [str(rpm_ingest), "serve"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 2
    assert "RPM_DATABASE_PASSWORD is a placeholder" in result.stderr
    assert "Traceback" not in result.stderr and "change-me-database-password" not in result.stderr

"""Service configuration, built once in ``main()`` or the app lifespan and injected.

Every variable is ``RPM_<NAME>`` (also read from a ``.env`` file); see ``docs/contract/cli-and-api.md``.
Any of them may also be a file named after the variable (``rpm_database_password``, case does not
matter) in ``RPM_SECRETS_DIR`` (default ``/run/secrets``, where docker compose mounts its
``secrets:``); a variable in the environment or ``.env`` wins over the file.

Outside ``RPM_ENVIRONMENT=development`` a placeholder secret (``change-me...``, ``password``, empty;
see ``ingest/placeholders.py``) in any secret setting is refused, naming the variable.
"""

from __future__ import annotations

import os
import re
import warnings
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from devices.errors import BrokerConfigError
from devices.message import ECG_MAX_BYTES, FUTURE_TOLERANCE, MAX_PAYLOAD_BYTES
from devices.models import MAX_READINGS_PER_MESSAGE
from devices.mqtt.address import parse_broker_url
from ingest.errors import ConfigurationError
from ingest.placeholders import placeholder_reason, url_password
from ingest.smart.issuers import IssuerConfigError, parse_issuers

_ORIGIN_RE: Final = re.compile(r"^(https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\*)$")
#: Where docker compose (and Kubernetes, by convention) mounts secrets; RPM_SECRETS_DIR overrides.
SECRETS_DIR_VARIABLE: Final = "RPM_SECRETS_DIR"
DEFAULT_SECRETS_DIR: Final = Path("/run/secrets")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RPM_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then the environment, then ``.env``, then the files of RPM_SECRETS_DIR."""
        if isinstance(file_secret_settings, SecretsSettingsSource) and file_secret_settings.secrets_dir:
            return init_settings, env_settings, dotenv_settings, file_secret_settings  # _secrets_dir=
        directory = secrets_dir()
        if directory is None:
            return init_settings, env_settings, dotenv_settings
        return init_settings, env_settings, dotenv_settings, _SecretFiles(settings_cls, secrets_dir=directory)

    # --- storage
    database_url: str | None = Field(
        default=None, description="postgresql://... ; none starts an embedded PostgreSQL"
    )
    database_password: SecretStr | None = Field(
        default=None, description="replaces the password of RPM_DATABASE_URL (keeps it out of the URL)"
    )
    db_pool_min: int = Field(default=1, ge=1, le=100)
    db_pool_max: int = Field(default=10, ge=1, le=200)
    data_dir: Path = Path("./var")

    # --- MQTT
    mqtt_url: str | None = Field(
        default=None, description="mqtt://user:pass@host:1883 or mqtts://...; none = embedded"
    )
    mqtt_shared_group: str | None = None
    mqtt_topic_prefix: str = Field(default="rpm", pattern=r"^[A-Za-z0-9_\-/]{1,64}$")
    mqtt_client_id: str = Field(default="rpm-ingest", min_length=1, max_length=64)
    mqtt_protocol: Literal["5", "3.1.1"] = "5"
    mqtt_session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)
    mqtt_receive_maximum: int = Field(default=1000, ge=1, le=65535)
    mqtt_ca_file: Path | None = None
    mqtt_cert_file: Path | None = None
    mqtt_key_file: Path | None = None
    mqtt_tls_insecure: bool = False
    mqtt_enabled: bool = Field(default=True, description="run the MQTT consumer in serve")
    mqtt_username: str | None = Field(default=None, description="overrides the user in RPM_MQTT_URL")
    mqtt_password: SecretStr | None = Field(default=None, description="overrides the URL's password")
    mqtt_keepalive_s: int = Field(default=30, ge=5, le=3600)
    mqtt_reconnect_min_s: int = Field(default=1, ge=1, le=60)
    mqtt_reconnect_max_s: int = Field(default=30, ge=1, le=3600)
    mqtt_buffer_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024 * 1024, description="payload bytes held before back-pressure"
    )
    mqtt_retry_max_s: float = Field(default=10.0, gt=0, le=300, description="storage retry backoff cap")
    mqtt_stop_grace_s: float = Field(default=10.0, ge=0, le=600, description="stop: time to finish a batch")
    mqtt_writers: int = Field(
        default=2,
        ge=1,
        le=16,
        description="batches stored at once, each in its own transaction (acknowledged in arrival"
        " order); one transaction keeps one PostgreSQL backend busy at most",
    )
    mqtt_leave_on_stop: bool = Field(
        default=True,
        description="in a shared group, a clean stop hands this process's share back (unsubscribe,"
        " store what it received, end the session); see docs/scaling.md",
    )
    mqtt_group_heartbeat_s: float = Field(
        default=10.0, ge=0.5, le=300, description="a shared-group member records that it is alive"
    )
    mqtt_adopt_after_s: float = Field(
        default=120.0,
        ge=1,
        le=30 * 86400,
        description="a member adopts the kept session of one not seen for this long (docs/scaling.md)",
    )
    mqtt_embedded_host: str = "127.0.0.1"
    mqtt_embedded_port: int = Field(default=1883, ge=0, le=65535, description="0 picks a free port")

    # --- ingest batching (flush at N messages or T ms, whichever first)
    batch_max_messages: int = Field(default=500, ge=1, le=100_000)
    batch_max_ms: int = Field(default=50, ge=1, le=60_000)
    batch_max_bytes: int = Field(
        default=512 * 1024,
        ge=1024,
        le=256 * 1024 * 1024,
        description="also flush once the batch holds this many payload bytes (a gateway's messages"
        " carry many readings each: smaller transactions keep parsing and storing overlapped)",
    )
    # --- input limits (the contract's values by default; see ingest/limits.py)
    max_payload_bytes: int = Field(default=MAX_PAYLOAD_BYTES, ge=1024, le=16 * 1024 * 1024)
    ecg_max_bytes: int = Field(
        default=ECG_MAX_BYTES,
        ge=1024,
        le=16 * 1024 * 1024,
        description="a message (MQTT payload or HTTP body) holding an ECG reading may be this large",
    )
    max_readings_per_message: int = Field(default=MAX_READINGS_PER_MESSAGE, ge=1, le=100_000)
    future_tolerance_s: int = Field(
        default=int(FUTURE_TOLERANCE.total_seconds()), ge=0, le=86_400
    )

    # --- HTTP
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)

    # --- FHIR export
    fhir_base_url: str | None = None
    fhir_auth: Literal["none", "bearer", "smart-backend"] = "none"
    fhir_token: SecretStr | None = None
    fhir_client_id: str | None = None
    fhir_private_key_file: Path | None = None
    fhir_token_url: str | None = None
    fhir_bundle_size: int = Field(default=100, ge=1, le=1000)
    # --- FHIR export delivery (see docs/fhir.md)
    fhir_workers: int = Field(default=1, ge=1, le=32, description="export worker threads per process")
    fhir_poll_interval_s: float = Field(default=1.0, gt=0, le=300, description="idle worker poll")
    fhir_lease_s: float = Field(
        default=60.0, ge=1, le=3600, description="hold on claimed rows, renewed while sending"
    )
    fhir_panel_wait_s: float = Field(
        default=30.0, ge=0, le=3600, description="a BP panel missing a component waits this long"
    )
    fhir_timeout_s: float = Field(default=30.0, gt=0, le=600, description="EHR request timeout")
    fhir_keep_sent_days: int = Field(default=30, ge=1, le=36500, description="then sent rows go")
    # --- patients from the EHR, alerts as Flags (see docs/fhir.md)
    fhir_patient_identifier_system: str | None = Field(
        default=None, max_length=500, description="identifier system of the clinic's MRNs in the EHR"
    )
    fhir_patient_lookup_retry_s: float = Field(
        default=3600.0, ge=1, le=30 * 86400, description="pending and not-found patients asked again"
    )
    fhir_import_max_members: int = Field(
        default=10_000, ge=1, le=100_000, description="largest Group POST /v1/patients/import reads"
    )
    fhir_export_alerts: bool = Field(default=True, description="alerts go to the EHR as FHIR Flags")

    # --- HL7 v2 over MLLP: ORU^R01 out, ADT in (see docs/hl7.md)
    hl7_mllp_url: str | None = Field(
        default=None, description="mllp://host:port: send every stored reading as ORU^R01 there"
    )
    hl7_listen: str | None = Field(default=None, description="host:port: accept ADT messages there")
    hl7_sending_application: str = Field(default="RPM-INGEST", min_length=1, max_length=200)
    hl7_sending_facility: str | None = Field(
        default=None, max_length=200, description="MSH-4; default: the clinic id of each message"
    )
    hl7_receiving_application: str = Field(default="EHR", min_length=1, max_length=200)
    hl7_receiving_facility: str = Field(default="HOSPITAL", min_length=1, max_length=200)
    hl7_mrn_authority: str = Field(default="", max_length=200, description="PID-3.4 of the MRN")
    hl7_ack_timeout_s: float = Field(default=10.0, gt=0, le=600, description="wait for each ACK")
    hl7_connect_timeout_s: float = Field(default=5.0, gt=0, le=600)
    hl7_batch_size: int = Field(default=200, ge=1, le=5000, description="rows claimed at once")
    hl7_poll_interval_s: float = Field(default=0.5, gt=0, le=300, description="idle sender poll")
    hl7_lease_s: float = Field(default=60.0, ge=1, le=3600, description="claim lease, renewed")
    hl7_retry_min_s: float = Field(default=1.0, gt=0, le=3600, description="first retry delay")
    hl7_retry_max_s: float = Field(default=300.0, gt=0, le=86_400, description="retry backoff cap")
    hl7_adt_clinic: str = Field(
        default="default", pattern=r"^[A-Za-z0-9._-]{1,64}$", description="clinic ADT patients join"
    )
    hl7_max_message_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    hl7_read_timeout_s: float = Field(
        default=30.0, gt=0, le=3600, description="a started message must arrive whole within this"
    )
    hl7_idle_timeout_s: float = Field(default=600.0, gt=0, le=86_400, description="silent client")
    hl7_max_connections: int = Field(default=64, ge=1, le=10_000)
    hl7_received_keep_days: int = Field(
        default=90, ge=1, le=36_500, description="how long an applied ADT's MSH-10 is remembered"
    )

    # --- DICOM: ECG strips to a PACS over DICOMweb STOW-RS (see docs/dicom.md)
    dicomweb_url: str | None = Field(
        default=None, description="DICOMweb base URL of the PACS; each ECG strip is stored there"
    )
    dicom_timeout_s: float = Field(default=30.0, gt=0, le=600, description="PACS request timeout")
    dicom_batch_size: int = Field(default=20, ge=1, le=1000, description="rows claimed at once")
    dicom_poll_interval_s: float = Field(default=1.0, gt=0, le=300, description="idle worker poll")
    dicom_lease_s: float = Field(default=60.0, ge=1, le=3600, description="claim lease, renewed")
    dicom_ae: str | None = Field(
        default=None,
        max_length=300,
        description="AETITLE@host:port: C-STORE to this Storage SCP (a PACS without DICOMweb)",
    )
    dicom_calling_ae: str = Field(
        default="RPMINGEST", min_length=1, max_length=16, description="our AE title in C-STORE"
    )

    # --- alerts (see docs/alerts.md)
    alert_scheduler_interval_s: float = Field(
        default=30.0, gt=0, le=3600, description="missing data, battery and escalation checks"
    )
    alert_escalate_after_s: int = Field(
        default=900, ge=1, le=7 * 86400, description="unacknowledged critical alert escalates after"
    )
    alert_escalation_max_level: int = Field(default=3, ge=0, le=100)
    alert_stream_heartbeat_s: float = Field(default=15.0, gt=0, le=300)
    alert_stream_poll_s: float = Field(default=2.0, gt=0, le=60)
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=120)
    webhook_max_attempts: int = Field(default=8, ge=1, le=100)
    webhook_backoff_base_s: float = Field(default=2.0, gt=0, le=3600)
    webhook_backoff_max_s: float = Field(default=600.0, gt=0, le=86400)
    webhook_allow_networks: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = Field(
        default=(),
        description="comma-separated networks (CIDR) webhooks may reach although internal"
        " (loopback, private, link-local...); empty = only public addresses",
    )

    # --- several processes (see docs/scaling.md)
    workers: int = Field(default=1, ge=1, le=64, description="serve: worker processes (--workers)")
    replica: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._-]{1,64}$",
        description="this process's name in a group of replicas: the MQTT client id becomes"
        " <RPM_MQTT_CLIENT_ID>-<replica>; the value 'hostname' takes the host's name",
    )

    # --- operations
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    environment: Literal["development", "production"] = "development"

    # --- security (see docs/security.md)
    rate_limit_per_minute: int = Field(
        default=6000, ge=0, le=10_000_000, description="requests per minute per token; 0 = off"
    )
    rate_limit_burst: int = Field(default=1000, ge=1, le=1_000_000)
    max_header_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="comma-separated origins allowed by CORS; empty = off"
    )
    hsts_max_age_s: int = Field(default=0, ge=0, description="Strict-Transport-Security; 0 = off")
    readings_retention_days: int | None = Field(
        default=None, ge=1, le=36500, description="delete raw readings older than this; none = keep"
    )
    retention_interval_s: int = Field(default=3600, ge=1, le=7 * 86400)
    # dead letters (see docs/security.md): bounded per device/topic and window, capped, expiring
    dead_letter_limit: int = Field(
        default=100, ge=0, le=1_000_000,
        description="dead letters kept in full per source and device (else topic) per window;"
        " the rest are counted into one summary row; 0 = no limit",
    )
    dead_letter_window_s: int = Field(default=60, ge=1, le=86_400)
    dead_letter_max_rows: int = Field(
        default=100_000, ge=0, le=1_000_000_000,
        description="the oldest dead letters beyond this many rows are deleted; 0 = no cap",
    )
    dead_letter_retention_days: int = Field(
        default=30, ge=0, le=36500, description="delete dead letters older than this; 0 = keep"
    )
    mqtt_password_file: Path | None = Field(default=None, description="Mosquitto password_file")
    mqtt_acl_file: Path | None = Field(default=None, description="Mosquitto acl_file")

    # --- SMART on FHIR app launch of the dashboard (see docs/smart.md)
    smart_client_id: str | None = Field(
        default=None, min_length=1, max_length=200, description="the client id registered with the EHR"
    )
    smart_client_secret: SecretStr | None = Field(
        default=None, description="confidential client (client_secret_basic); none = public client, PKCE"
    )
    smart_issuers: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="comma-separated <FHIR base URL>=<clinic id> allowed as iss; empty = SMART off",
    )
    public_url: str | None = Field(
        default=None, description="the service's external base URL; redirect URI = it + /smart/callback"
    )
    smart_launch_ttl_s: int = Field(default=600, ge=30, le=3600, description="a launch's state expires")
    smart_session_ttl_s: int = Field(
        default=8 * 3600, ge=60, le=7 * 86400, description="a dashboard session opened by a launch expires"
    )
    smart_timeout_s: float = Field(default=10.0, gt=0, le=120, description="requests to the EHR")

    @field_validator("smart_issuers", mode="before")
    @classmethod
    def _smart_issuers(cls, v: object) -> object:
        if isinstance(v, str):
            try:
                return parse_issuers(v)
            except IssuerConfigError as exc:
                raise ValueError(str(exc)) from None
        return v

    @field_validator("smart_client_id", "public_url", mode="before")
    @classmethod
    def _blank_text_is_none(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[A-Za-z0-9.\-\[\]:]+(/[^\s?#]*)?$", v):
            raise ValueError("RPM_PUBLIC_URL must be an http:// or https:// URL without query or fragment")
        return None if v is None else v.rstrip("/")

    @field_validator("mqtt_password_file", "mqtt_acl_file", mode="before")
    @classmethod
    def _blank_is_none(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, v: object) -> object:
        if isinstance(v, str):
            v = [o.strip() for o in v.split(",") if o.strip()]
        if isinstance(v, list):
            for origin in v:
                if not isinstance(origin, str) or not _ORIGIN_RE.match(origin):
                    raise ValueError(f"not an origin (scheme://host[:port]): {origin!r}")
        return v

    @field_validator("webhook_allow_networks", mode="before")
    @classmethod
    def _networks(cls, v: object) -> object:
        items = v.split(",") if isinstance(v, str) else v
        if not isinstance(items, list | tuple):
            return v
        out: list[object] = []
        for item in items:
            if isinstance(item, str):
                if not item.strip():
                    continue
                try:
                    item = ip_network(item.strip())
                except ValueError:
                    raise ValueError(
                        f"not a network (CIDR such as 10.20.0.0/16, or an address): {item!r}"
                    ) from None
            out.append(item)
        return tuple(out)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.upper() if isinstance(v, str) else v

    @field_validator("database_url")
    @classmethod
    def _pg_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("postgresql://", "postgres://")):
            raise ValueError("RPM_DATABASE_URL must start with postgresql://")
        return v

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                parse_broker_url(v)  # the rules every MQTT client of the project follows
            except BrokerConfigError as exc:
                raise ValueError(exc.reason) from None
        return v

    @field_validator("hl7_mllp_url", "hl7_listen", "hl7_sending_facility", mode="before")
    @classmethod
    def _hl7_blank_is_none(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("hl7_mllp_url")
    @classmethod
    def _hl7_url(cls, v: str | None) -> str | None:
        if v is not None:
            parts = urlsplit(v)
            try:
                port = parts.port
            except ValueError:
                port = None
            if parts.scheme != "mllp" or not parts.hostname or port is None or parts.path not in ("", "/"):
                raise ValueError("RPM_HL7_MLLP_URL must look like mllp://host:port")
        return v

    @field_validator("hl7_listen")
    @classmethod
    def _hl7_listen(cls, v: str | None) -> str | None:
        if v is not None:
            host, sep, port = v.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
                raise ValueError("RPM_HL7_LISTEN must look like host:port (port 0 picks a free one)")
        return v

    @field_validator("dicomweb_url", mode="before")
    @classmethod
    def _dicomweb_url(cls, v: object) -> object:
        if isinstance(v, str) and not v.strip():
            return None  # RPM_DICOMWEB_URL= (empty): no PACS, strips get no DICOM rows
        if isinstance(v, str) and not re.match(r"^https?://[^\s/?#]+[^\s?#]*$", v):
            raise ValueError("RPM_DICOMWEB_URL must be an http:// or https:// URL")
        return v

    @field_validator("fhir_base_url", mode="before")
    @classmethod
    def _fhir_url(cls, v: object) -> object:
        if isinstance(v, str) and not v.strip():
            return None  # RPM_FHIR_BASE_URL= (empty) means no EHR: export rows wait
        if isinstance(v, str) and not re.match(r"^https?://[^\s/?#]+[^\s?#]*$", v):
            raise ValueError("RPM_FHIR_BASE_URL must be an http:// or https:// URL")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.db_pool_min > self.db_pool_max:
            raise ValueError("RPM_DB_POOL_MIN is larger than RPM_DB_POOL_MAX")
        if self.fhir_auth == "bearer" and self.fhir_token is None:
            raise ValueError("RPM_FHIR_AUTH=bearer needs RPM_FHIR_TOKEN")
        if self.fhir_auth == "smart-backend" and (
            self.fhir_client_id is None or self.fhir_private_key_file is None
        ):
            raise ValueError(
                "RPM_FHIR_AUTH=smart-backend needs RPM_FHIR_CLIENT_ID and RPM_FHIR_PRIVATE_KEY_FILE"
            )
        if self.smart_issuers and (self.smart_client_id is None or self.public_url is None):
            raise ValueError("RPM_SMART_ISSUERS needs RPM_SMART_CLIENT_ID and RPM_PUBLIC_URL")
        if self.environment == "production" and self.smart_issuers:
            urls = (*self.smart_issuers, self.public_url or "")
            insecure = [u for u in urls if not u.startswith("https://")]
            if insecure:
                raise ValueError(
                    f"production needs https:// in RPM_SMART_ISSUERS and RPM_PUBLIC_URL: {insecure[0]}"
                )
        if self.environment == "production" and (
            self.database_url is None or self.mqtt_url is None
        ):
            raise ValueError("production needs RPM_DATABASE_URL and RPM_MQTT_URL (no embedded servers)")
        return self

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> Settings:
        """Refuse example secrets outside development (there: a warning)."""
        problems = [
            f"{variable} is a placeholder, not a secret ({reason})"
            for variable, value in self.secret_values()
            if (reason := placeholder_reason(value)) is not None
        ]
        if not problems:
            return self
        message = "; ".join(problems)
        if self.environment == "development":
            warnings.warn(f"{message} (accepted because RPM_ENVIRONMENT=development)", stacklevel=2)
            return self
        raise ValueError(
            f"{message}: set a real secret (e.g. `openssl rand -base64 32`); placeholders are"
            " accepted only with RPM_ENVIRONMENT=development"
        )

    @model_validator(mode="after")
    def _database_password(self) -> Settings:
        """RPM_DATABASE_PASSWORD goes into the URL every database client is given."""
        if self.database_password is None:
            return self
        if self.database_url is None:
            raise ValueError("RPM_DATABASE_PASSWORD needs RPM_DATABASE_URL (the embedded database has none)")
        self.database_url = with_password(self.database_url, self.database_password.get_secret_value())
        return self

    def secret_values(self) -> list[tuple[str, str]]:
        """(variable, value) of every secret that is set, for the placeholder check."""
        found: list[tuple[str, str]] = []
        if self.database_url is not None and (password := url_password(self.database_url)) is not None:
            found.append(("RPM_DATABASE_URL (its password)", password))
        if self.mqtt_url is not None and (password := url_password(self.mqtt_url)) is not None:
            found.append(("RPM_MQTT_URL (its password)", password))
        secrets = {
            "RPM_DATABASE_PASSWORD": self.database_password,
            "RPM_MQTT_PASSWORD": self.mqtt_password,
            "RPM_FHIR_TOKEN": self.fhir_token,
            "RPM_SMART_CLIENT_SECRET": self.smart_client_secret,
        }
        found.extend((name, value.get_secret_value()) for name, value in secrets.items() if value is not None)
        return found

    @property
    def readings_topic(self) -> str:
        return f"{self.mqtt_topic_prefix}/+/readings"


class _SecretFiles(SecretsSettingsSource):
    """pydantic-settings' secret files, with an unreadable file reported as a configuration error."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        try:
            return super().get_field_value(field, field_name)
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigurationError(
                f"cannot read the secret file of RPM_{field_name.upper()} in {self.secrets_dir}: {reason}"
                " (the service's user must be able to read it; compose secrets keep the file's mode)"
            ) from None

    def __call__(self) -> dict[str, Any]:
        try:
            return super().__call__()
        except SettingsError as exc:  # pydantic-settings wraps what a source raises
            if isinstance(exc.__cause__, ConfigurationError):
                raise exc.__cause__ from None
            raise


def secrets_dir() -> Path | None:
    """The directory of secret files: RPM_SECRETS_DIR (which must exist), else /run/secrets if present."""
    configured = os.environ.get(SECRETS_DIR_VARIABLE, "").strip()
    if configured:
        directory = Path(configured)
        if not directory.is_dir():
            raise ConfigurationError(f"{SECRETS_DIR_VARIABLE}={configured} is not a directory")
        return directory
    return DEFAULT_SECRETS_DIR if DEFAULT_SECRETS_DIR.is_dir() else None


def with_password(url: str, password: str) -> str:
    """``url`` with ``password`` (percent-encoded) in place of the password in its user part."""
    parts = urlsplit(url)
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]  # as written (already percent-encoded)
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, turning validation errors into ConfigurationError."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"RPM_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            if e["loc"]
            else e["msg"].removeprefix("Value error, ")  # a rule across settings names its variables
            for e in exc.errors(include_url=False)
        )
        raise ConfigurationError(f"invalid configuration: {problems}") from None

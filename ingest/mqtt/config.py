"""How the service reaches the broker: ``RPM_MQTT_URL`` plus the ``RPM_MQTT_*`` settings.

The rules live in :mod:`devices.mqtt.options` (shared with the gateway and the simulators); this
module only maps the settings onto them and says which variable is at fault.
"""

from __future__ import annotations

import socket
from typing import Final

from devices.errors import BrokerConfigError
from devices.mqtt.options import BrokerOptions, broker_options
from ingest.errors import ConfigurationError
from ingest.settings import Settings

_VARIABLE_OF_SETTING: Final = {
    "url": "RPM_MQTT_URL",
    "username": "RPM_MQTT_USERNAME (or the user in RPM_MQTT_URL)",
    "password": "RPM_MQTT_PASSWORD (or the password in RPM_MQTT_URL)",
    "protocol": "RPM_MQTT_PROTOCOL",
    "client_id": "RPM_MQTT_CLIENT_ID",
    "ca_file": "RPM_MQTT_CA_FILE",
    "cert_file": "RPM_MQTT_CERT_FILE",
    "key_file": "RPM_MQTT_KEY_FILE",
    "reconnect": "RPM_MQTT_RECONNECT_MIN_S/RPM_MQTT_RECONNECT_MAX_S",
}


HOSTNAME_REPLICA: Final = "hostname"


def consumer_client_id(settings: Settings) -> str:
    """The consumer's session id: ``RPM_MQTT_CLIENT_ID``, or ``<RPM_MQTT_CLIENT_ID>-<replica>`` for
    a replica (``RPM_REPLICA``; ``hostname`` = the host's name, a container's id under compose).
    It must be stable for each replica: a replica that crashed finds its session (and the
    messages it had not acknowledged) only under the same id (docs/scaling.md)."""
    replica = settings.replica
    if replica is None:
        return settings.mqtt_client_id
    if replica == HOSTNAME_REPLICA:
        replica = socket.gethostname()
    return f"{settings.mqtt_client_id}-{replica}"


def options_from_settings(settings: Settings, *, client_id: str | None = None) -> BrokerOptions:
    """Build and check the broker options from settings (``client_id`` overrides
    ``RPM_MQTT_CLIENT_ID``); raise :class:`ConfigurationError` naming the variable at fault."""
    if settings.mqtt_url is None:
        raise ConfigurationError("RPM_MQTT_URL is not set and no embedded broker runs")
    try:
        return broker_options(
            settings.mqtt_url,
            client_id=client_id or settings.mqtt_client_id,
            protocol=settings.mqtt_protocol,
            username=settings.mqtt_username,
            password=(
                settings.mqtt_password.get_secret_value() if settings.mqtt_password is not None else None
            ),
            ca_file=settings.mqtt_ca_file,
            cert_file=settings.mqtt_cert_file,
            key_file=settings.mqtt_key_file,
            tls_insecure=settings.mqtt_tls_insecure,
            keepalive_s=settings.mqtt_keepalive_s,
            session_expiry_s=settings.mqtt_session_expiry_s,
            receive_maximum=settings.mqtt_receive_maximum,
            reconnect_min_s=settings.mqtt_reconnect_min_s,
            reconnect_max_s=settings.mqtt_reconnect_max_s,
        )
    except BrokerConfigError as exc:
        variable = _VARIABLE_OF_SETTING.get(exc.setting, "RPM_MQTT_*")
        raise ConfigurationError(f"{variable}: {exc.reason}") from None

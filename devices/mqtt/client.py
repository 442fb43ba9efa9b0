"""A paho-mqtt 2 client configured from :class:`~devices.mqtt.options.BrokerOptions`.

The one place a paho client is built: protocol version and session, credentials, TLS context,
reconnect backoff (paho reconnects by itself once its network loop runs), and the arguments of
``connect``. The publisher and the service's consumer add their own callbacks.
"""

from __future__ import annotations

import logging
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devices.mqtt.options import BrokerOptions

logger = logging.getLogger(__name__)


def new_client(
    options: BrokerOptions,
    *,
    manual_ack: bool = False,
    persistent: bool = False,
    log: logging.Logger | None = None,
) -> paho.Client:
    """A paho client configured from ``options`` (protocol, session, credentials, TLS, backoff).

    ``persistent``: the broker keeps the session (subscriptions, queued and unacknowledged
    messages) across disconnects; MQTT 5 also needs :func:`connect_kwargs` with the same value.
    ``log`` receives paho's own log lines (default: this module's logger).
    """
    v5 = options.protocol == "5"
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=options.client_id,
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
        clean_session=None if v5 else not persistent,
        manual_ack=manual_ack,
        reconnect_on_failure=True,
    )
    client.enable_logger(log or logger)
    if options.address.username is not None:
        client.username_pw_set(options.address.username, options.address.password)
    context = options.ssl_context()
    if context is not None:
        client.tls_set_context(context)
        if options.tls_insecure:
            client.tls_insecure_set(True)
    client.reconnect_delay_set(options.reconnect_min_s, options.reconnect_max_s)
    return client


def connect_kwargs(options: BrokerOptions, *, persistent: bool = False) -> dict[str, Any]:
    """Arguments of ``connect``: keepalive; MQTT 5 clean start, session expiry, Receive Maximum."""
    kwargs: dict[str, Any] = {"keepalive": options.keepalive_s}
    if options.protocol == "5":
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = options.session_expiry_s if persistent else 0
        props.ReceiveMaximum = options.receive_maximum
        kwargs.update(clean_start=not persistent, properties=props)
    return kwargs


def connect_async(client: paho.Client, options: BrokerOptions, *, persistent: bool = False) -> None:
    """Start connecting in the background (paho's network thread keeps trying, with backoff)."""
    kwargs = connect_kwargs(options, persistent=persistent)
    client.connect_async(options.address.host, options.address.port, **kwargs)
    client.loop_start()

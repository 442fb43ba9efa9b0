"""Topic names: the subscription filter and the device id a topic vouches for (pure)."""

from __future__ import annotations

import re
from typing import Final

from devices.models import DEVICE_ID_RE
from ingest.errors import ConfigurationError, TopicRejected

READINGS_LEVEL: Final = "readings"
_GROUP_RE: Final = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_MAX_SHOWN: Final = 80


def readings_filter(prefix: str) -> str:
    """``<prefix>/+/readings``: one level for the device id."""
    return f"{prefix}/+/{READINGS_LEVEL}"


def subscription(prefix: str, shared_group: str | None) -> str:
    """The filter the consumer subscribes to, as a shared subscription when a group is set."""
    if shared_group is None:
        return readings_filter(prefix)
    if not _GROUP_RE.fullmatch(shared_group):
        raise ConfigurationError(
            "RPM_MQTT_SHARED_GROUP must be 1-64 characters of A-Z a-z 0-9 . _ -"
        )
    return f"$share/{shared_group}/{readings_filter(prefix)}"


def device_from_topic(prefix: str, topic: str) -> str:
    """The device id of ``<prefix>/<device_id>/readings``; raise :class:`TopicRejected`."""
    head = prefix + "/"
    tail = "/" + READINGS_LEVEL
    if not (topic.startswith(head) and topic.endswith(tail)) or len(topic) < len(head) + len(tail):
        raise TopicRejected(f"topic {shown(topic)} is not {readings_filter(prefix)}")
    device_id = topic[len(head) : len(topic) - len(tail)]
    if not DEVICE_ID_RE.fullmatch(device_id):
        raise TopicRejected(
            f"topic device id {shown(device_id)} is not 1-64 characters of A-Z a-z 0-9 . _ : -"
        )
    return device_id


def shown(text: str) -> str:
    """A topic fragment safe to put in a reason or a log line (quoted, escaped, shortened)."""
    if len(text) > _MAX_SHOWN:
        return repr(text[:_MAX_SHOWN]) + f"... ({len(text)} characters)"
    return repr(text)

"""Errors of the MQTT consumer (part of the ``ingest`` hierarchy)."""

from __future__ import annotations

from ingest.errors import IngestError


class MqttError(IngestError):
    """Root of the MQTT consumer's errors."""


class TopicRejected(MqttError):
    """A message arrived on a topic that names no valid device: it is dead-lettered and acked."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

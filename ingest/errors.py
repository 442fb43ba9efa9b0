"""One error hierarchy for the ``ingest`` package. The subclass decides the handling."""

from __future__ import annotations


class IngestError(Exception):
    """Root of every error raised by the ``ingest`` package."""


class ConfigurationError(IngestError):
    """Settings are inconsistent or unusable; the process should not start."""


class MigrationError(IngestError):
    """A schema migration failed or the schema is newer than this code."""


class NotFound(IngestError):
    """A referenced clinic, patient, device or alert does not exist (or is not visible)."""


class Conflict(IngestError):
    """The request conflicts with stored state (duplicate id, MRN already used...)."""


class EmbeddedServiceError(IngestError):
    """An embedded PostgreSQL or MQTT broker could not be started."""


# --- the MQTT consumer


class MqttError(IngestError):
    """Root of the MQTT consumer's errors."""


class TopicRejected(MqttError):
    """A message arrived on a topic that names no valid device: it is dead-lettered and acked."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- the alert engine


class AlertsError(IngestError):
    """Root of the errors raised by ``ingest.alerts``."""


class InvalidRule(AlertsError):
    """Rule parameters that do not make a usable rule (answered 422 by the API)."""


class UnknownRule(NotFound, AlertsError):
    """No rule with that key exists."""


class AlertNotFound(NotFound, AlertsError):
    """No such alert (or not visible to the caller)."""


class InvalidTransition(Conflict, AlertsError):
    """The alert's status does not allow the requested change (e.g. acknowledging a resolved one)."""

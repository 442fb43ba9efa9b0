"""One error hierarchy for the ``ingest`` package. The subclass decides the handling."""

from __future__ import annotations


class IngestError(Exception):
    """Root of every error raised by the ``ingest`` package."""


class ConfigurationError(IngestError):
    """Settings are inconsistent or unusable; the process should not start."""


class StorageUnavailable(IngestError):
    """The database cannot be reached right now: retry later, acknowledge nothing."""


class MigrationError(IngestError):
    """A schema migration failed or the schema is newer than this code."""


class NotFound(IngestError):
    """A referenced clinic, patient, device or alert does not exist (or is not visible)."""


class Conflict(IngestError):
    """The request conflicts with stored state (duplicate id, MRN already used...)."""


class EmbeddedServiceError(IngestError):
    """An embedded PostgreSQL or MQTT broker could not be started."""

"""Errors of the alert engine, under the ``ingest`` package's single root."""

from __future__ import annotations

from ingest.errors import Conflict, IngestError, NotFound


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

"""One error hierarchy for the ``fhir_export`` package.

The subclass says what to do next: a :class:`MappingError` or :class:`PermanentDeliveryError`
parks the outbox row with its reason; a :class:`TransientDeliveryError` or :class:`AuthError`
leaves it pending for a later attempt; a :class:`ConfigurationError` stops start-up.
"""

from __future__ import annotations


class FhirExportError(Exception):
    """Root of every error raised by the ``fhir_export`` package."""


class ConfigurationError(FhirExportError):
    """The mapping table or the export settings are inconsistent (caught at start-up)."""


class MappingError(FhirExportError):
    """A stored reading cannot become a FHIR resource (e.g. the patient has no FHIR id)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class DeliveryError(FhirExportError):
    """The EHR did not accept a request."""

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        self.reason = reason
        self.status = status
        super().__init__(reason if status is None else f"HTTP {status}: {reason}")


class TransientDeliveryError(DeliveryError):
    """Worth retrying: network failure, timeout, 5xx, 429, or an unreadable answer.

    ``retry_after`` is the server's ``Retry-After`` in seconds, when it sent one.
    """

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason, status=status)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """The EHR refused the content (4xx); sending it again will not help.

    ``entry_issues`` maps a bundle entry index to the reasons the server gave for that entry
    (from ``OperationOutcome.issue.expression`` such as ``Bundle.entry[3].resource.code``).
    """

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        entry_issues: dict[int, list[str]] | None = None,
    ) -> None:
        super().__init__(reason, status=status)
        self.entry_issues = entry_issues or {}


class AuthError(FhirExportError):
    """No access token could be obtained (discovery, token endpoint or key problem).

    ``transient`` tells whether trying again later may succeed (network, 5xx) or whether an
    operator must fix the configuration (invalid_client, unreadable key).
    """

    def __init__(self, reason: str, *, transient: bool) -> None:
        self.reason = reason
        self.transient = transient
        super().__init__(reason)


class ReadError(FhirExportError):
    """A read from the EHR (a Patient search, a Group) gave no usable answer.

    ``transient``: the EHR was unreachable, timed out, or answered 5xx/429 (ask again later);
    otherwise it answered something unusable (4xx, not JSON, the wrong resource, too large).
    """

    def __init__(self, reason: str, *, status: int | None = None, transient: bool = False) -> None:
        self.reason = reason
        self.status = status
        self.transient = transient
        super().__init__(reason)

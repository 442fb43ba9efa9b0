"""One error hierarchy for the ``dicom_export`` package.

The subclass says what to do next with the outbox row: :class:`UnsupportedStrip` and
:class:`RefusedByPacs` park it with the reason (sending it again cannot help);
:class:`PacsUnavailable` leaves it pending for a later attempt.
"""

from __future__ import annotations


class DicomExportError(Exception):
    """Root of every error raised by the ``dicom_export`` package."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class UnsupportedStrip(DicomExportError):
    """The strip cannot become a conformant ECG waveform object (a lead or rate the IOD forbids)."""


class StowError(DicomExportError):
    """The PACS did not store an instance."""

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(reason if status is None else f"HTTP {status}: {reason}")
        self.reason = reason


class PacsUnavailable(StowError):
    """Worth retrying: network failure, timeout, 5xx, 429 or an unreadable answer.

    ``retry_after`` is the server's ``Retry-After`` in seconds, when it sent one.
    """

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason, status=status)
        self.retry_after = retry_after


class RefusedByPacs(StowError):
    """The PACS refused the content (400 or a failed instance): sending it again will not help."""

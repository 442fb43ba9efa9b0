"""The SMART launch's refusals. Each carries the HTTP status of the page that names its reason;
none ever lands on the dashboard."""

from __future__ import annotations

from typing import ClassVar

from ingest.errors import IngestError


class SmartError(IngestError):
    """Root of the SMART launch's errors: the launch stops and a page says why."""

    status: ClassVar[int] = 400
    title: ClassVar[str] = "The launch was refused"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LaunchRefused(SmartError):
    """The launch request itself is unusable: no or an unknown ``iss``, SMART not configured."""


class StateRefused(SmartError):
    """The callback's ``state`` is missing, unknown, used before, expired, or from another browser."""

    title = "This sign-in link is not valid"


class EhrUnavailable(SmartError):
    """The EHR's discovery documents or keys cannot be read or are not usable."""

    status = 502
    title = "The EHR could not be reached"


class AuthorizationFailed(SmartError):
    """The EHR refused, the code exchange failed, or the id token is not valid."""

    status = 401
    title = "The EHR sign-in could not be verified"


class ContextRefused(SmartError):
    """A valid sign-in that lacks what the dashboard needs (the user or the patient context)."""

    status = 403
    title = "The EHR did not say who and which patient"


class UnknownPatient(SmartError):
    """The EHR's patient context names no patient of this clinic's remote monitoring."""

    status = 404
    title = "Patient not enrolled in remote monitoring"

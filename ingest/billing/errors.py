"""The billing feature's errors (under the package-wide :class:`ingest.errors.IngestError`)."""

from __future__ import annotations

from ingest.errors import Conflict, IngestError, NotFound


class BillingError(IngestError):
    """Root of the errors raised by ``ingest.billing``."""


class InvalidMonth(BillingError, ValueError):
    """A month that is not ``YYYY-MM`` with a two-digit month 01–12 (answered 422)."""


class InvalidTimeZone(BillingError, ValueError):
    """A clinic time zone that is not an IANA name known to the time zone database (422)."""


class EpisodeConflict(Conflict, BillingError):
    """An explicit episode start that would overlap an existing episode (409)."""


class EntryNotFound(NotFound, BillingError):
    """No such clinician time entry for this patient (or it was deleted)."""

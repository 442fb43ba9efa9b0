"""What the Flag export knows of an alert (read from the alert when its outbox row is claimed).

Kept apart from :mod:`fhir_export.flags` (the mapping) so that :class:`fhir_export.models.ExportItem`
can carry one without importing the mapping.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ObservationRef:
    """A reading behind an alert: the Observation it became is found by its identifier."""

    device_id: str
    metric: str
    measured_at: datetime


@dataclass(frozen=True, slots=True)
class FlagItem:
    """An alert: ``resolved`` once it is (the Flag is then inactive, ``period.end`` set)."""

    alert_id: str
    resolved: bool
    severity: str
    message: str
    opened_at: datetime
    resolved_at: datetime | None
    observations: tuple[ObservationRef, ...] = ()

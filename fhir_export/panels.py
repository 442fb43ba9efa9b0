"""Which readings travel to the EHR together, and under which export key.

A reading is exported as an Observation of its own, except the blood-pressure components: the
systolic, diastolic and mean arterial pressure of one device at one time are one panel
Observation (LOINC 85354-9) with a component each (:meth:`fhir_export.mapping.ObservationMapper.observation`
builds it). These rules are pure; the service's outbox applies them when it writes rows (one per
single reading, one per panel) and when it reads them back:

* the **export key** of an item names what it is in the EHR for its device and time: the metric
  for a single reading, :data:`PANEL_KEY` for a panel, ``late:<metric>`` (:func:`late_key`) for a
  component that arrived after its panel had gone out, which conditional create cannot amend;
* a panel is **complete** once systolic and diastolic are both in (:func:`is_complete`); an
  incomplete one waits a while for the rest before it goes out without them;
* a panel's readings are listed in component order (:func:`in_panel_order`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, TypeVar

from devices.catalogue import BP_COMPONENTS
from devices.models import Reading
from fhir_export.table import MappingTable

PANEL_KEY: Final = "bp_panel"
LATE_PREFIX: Final = "late:"
# The kinds of export item (the outbox's ``kind`` column).
READING_KIND: Final = "reading"
PANEL_KIND: Final = "bp_panel"
LATE_KIND: Final = "late_component"

SYSTOLIC: Final = "systolic_bp"
DIASTOLIC: Final = "diastolic_bp"
REQUIRED: Final = (SYSTOLIC, DIASTOLIC)  # a panel without one of them is incomplete
_ORDER: Final = {metric: position for position, metric in enumerate(BP_COMPONENTS)}

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PanelKey:
    """What makes readings one panel: the same device at the same time."""

    device_id: str
    measured_at: datetime


@dataclass(frozen=True, slots=True)
class Grouping:
    """The mapping table's metrics by how they are exported: alone, or as panel components."""

    single_metrics: frozenset[str]
    panel_metrics: frozenset[str]

    @classmethod
    def of(cls, table: MappingTable) -> Grouping:
        codings = table.metrics.values()
        return cls(
            single_metrics=frozenset(c.metric for c in codings if not c.bp_component),
            panel_metrics=frozenset(c.metric for c in codings if c.bp_component),
        )

    def is_single(self, metric: str) -> bool:
        return metric in self.single_metrics

    def is_panel_member(self, metric: str) -> bool:
        return metric in self.panel_metrics

    def export_key(self, metric: str) -> str | None:
        """The export key of a reading of ``metric``; ``None`` when it is not exported."""
        if metric in self.panel_metrics:
            return PANEL_KEY
        return metric if metric in self.single_metrics else None


def late_key(metric: str) -> str:
    """The export key of a component that arrived after its panel went out."""
    return LATE_PREFIX + metric


def panel_key(reading: Reading) -> PanelKey:
    return PanelKey(reading.device_id, reading.measured_at)


def group_panels(items: Iterable[T], reading: Callable[[T], Reading]) -> dict[PanelKey, list[T]]:
    """Panel components by panel, in the order they came (``reading`` finds each item's reading)."""
    panels: dict[PanelKey, list[T]] = {}
    for item in items:
        panels.setdefault(panel_key(reading(item)), []).append(item)
    return panels


def is_complete(metrics: Collection[str]) -> bool:
    """Whether a panel holding ``metrics`` may go out without waiting for more."""
    return all(required in metrics for required in REQUIRED)


def late_components(arriving: Iterable[str], in_panel: Collection[str]) -> list[str]:
    """The arriving components that the panel already sent lacks (each needs a late row).

    A component the sent panel holds was stored again (after the readings table let it go): it
    is in the EHR already.
    """
    return [metric for metric in arriving if metric not in in_panel]


def panel_order(metric: str) -> tuple[int, str]:
    """Sort key: systolic, diastolic, mean arterial pressure, then anything else by name."""
    return (_ORDER.get(metric, len(_ORDER)), metric)


def in_panel_order(readings: Iterable[Reading]) -> tuple[Reading, ...]:
    return tuple(sorted(readings, key=lambda r: panel_order(r.metric)))

"""Optional parts of the running service, plugged into the composition root.

A component factory receives the wired services and returns what it adds: API routers, hooks on
newly stored readings (run inside the ingest transaction), and background work started after the
API is ready and stopped (in reverse order) before the pool closes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fastapi import APIRouter

from ingest.pipeline import NewReadingsHook
from ingest.services import Services


@dataclass
class Component:
    name: str
    routers: Sequence[APIRouter] = ()
    hooks: Sequence[NewReadingsHook] = ()
    start: Callable[[], None] | None = None
    stop: Callable[[], None] | None = None
    extras: dict[str, object] = field(default_factory=dict)


ComponentFactory = Callable[[Services], Component]


def default_components() -> list[ComponentFactory]:
    """The components `serve` runs, in start order (imports are lazy to keep start-up lean)."""
    factories: list[ComponentFactory] = []
    from ingest.alerts.component import alerts_component

    factories.append(alerts_component)
    from ingest.dashboard.component import dashboard_component

    factories.append(dashboard_component)
    from ingest.security.retention import retention_component

    factories.append(retention_component)
    from ingest.export.component import fhir_export_component

    factories.append(fhir_export_component)  # outbox hook + exports API; workers with an EHR
    from ingest.mqtt.consumer import mqtt_component

    factories.append(mqtt_component)  # keep last: starts after what it feeds, stops first
    return factories

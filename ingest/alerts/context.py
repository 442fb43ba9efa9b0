"""What the alert routes need from the running alerts component, and the dependency that hands it
over.

The component stores an :class:`AlertsContext` in ``services.extras``; a route asks for it with
:data:`AlertsDep`. So routes and component know this small module, not each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Final

from fastapi import Depends

from ingest.alerts.engine import AlertEngine
from ingest.alerts.events import EventSink
from ingest.alerts.scheduler import Scheduler
from ingest.alerts.stream import Broadcaster
from ingest.alerts.webhooks import WebhookWorker
from ingest.api.deps import ServicesDep
from ingest.services import Services

EXTRAS_KEY: Final = "alerts"


@dataclass
class AlertsContext:
    """What the alert routes and the tests reach through ``services.extras["alerts"]``."""

    origin: str
    engine: AlertEngine
    broadcaster: Broadcaster
    scheduler: Scheduler
    webhooks: WebhookWorker
    heartbeat_s: float
    # alert event sinks of other features (the Flag export): the engine's and the scheduler's list
    sinks: list[EventSink] = field(default_factory=list)


def alerts_context(services: Services) -> AlertsContext:
    ctx = services.extras.get(EXTRAS_KEY)
    if not isinstance(ctx, AlertsContext):
        raise RuntimeError("the alerts component is not installed")
    return ctx


def get_alerts(services: ServicesDep) -> AlertsContext:
    return alerts_context(services)


AlertsDep = Annotated[AlertsContext, Depends(get_alerts)]

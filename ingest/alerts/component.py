"""Wires the alert engine into the service: the ingest hook, the API routers, and the background
work (event listener for the live stream, scheduler, webhook worker)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from ingest.alerts import routes, threshold_routes
from ingest.alerts.context import EXTRAS_KEY, AlertsContext
from ingest.alerts.engine import AlertEngine
from ingest.alerts.events import EventSink
from ingest.alerts.kinds import REGISTRY, KindRegistry
from ingest.alerts.kinds.sync import sync_kinds
from ingest.alerts.scheduler import Scheduler
from ingest.alerts.stream import Broadcaster
from ingest.alerts.webhook_client import Resolver, resolve
from ingest.alerts.webhooks import Backoff, WebhookWorker
from ingest.components import Component
from ingest.metrics import Metrics
from ingest.services import Services

logger = logging.getLogger(__name__)

class _Counter:
    """Counts committed events written by this process (each process counts its own once)."""

    def __init__(self, metrics: Metrics, origin: str) -> None:
        self.metrics = metrics
        self.origin = origin

    def __call__(self, events: Sequence[dict[str, Any]]) -> None:
        for e in events:
            if e["origin"] != self.origin:
                continue
            alert = e["alert"]
            kind, severity = str(alert.get("kind")), str(alert.get("severity"))
            self.metrics.alert_events.labels(e["type"], kind, severity).inc()
            if e["type"] == "opened":
                self.metrics.alerts_opened.labels(kind, severity).inc()


def alerts_component(
    services: Services, *, kinds: KindRegistry = REGISTRY, resolver: Resolver = resolve
) -> Component:
    """``kinds``: the rule kinds to run with; the database learns them (and their default rules)
    here, before anything is evaluated. ``resolver``: how webhook host names become addresses."""
    s = services.settings
    origin = uuid.uuid4().hex[:12]
    with services.transaction() as conn:
        sync_kinds(conn, kinds)
    sinks: list[EventSink] = []  # other features add theirs through AlertsContext.sinks
    engine = AlertEngine(
        sinks=sinks,
        catalogue=services.pipeline.catalogue,
        origin=origin,
        kinds=kinds,
        observe=services.metrics.alert_evaluation_seconds.observe,
    )
    webhooks = WebhookWorker(
        services.pool,
        timeout_s=s.webhook_timeout_s,
        max_attempts=s.webhook_max_attempts,
        backoff=Backoff(s.webhook_backoff_base_s, s.webhook_backoff_max_s),
        allow_networks=s.webhook_allow_networks,
        resolver=resolver,
        on_result=lambda outcome: services.metrics.webhook_deliveries.labels(outcome).inc(),
    )
    conninfo = services.pool.conninfo
    broadcaster = Broadcaster(
        conninfo if isinstance(conninfo, str) else conninfo(),
        poll_s=s.alert_stream_poll_s,
        listeners=[_Counter(services.metrics, origin), webhooks.wake],
    )
    scheduler = Scheduler(
        services.pool,
        origin=origin,
        interval_s=s.alert_scheduler_interval_s,
        escalate_after_s=s.alert_escalate_after_s,
        escalation_max_level=s.alert_escalation_max_level,
        kinds=kinds,
        sinks=sinks,
    )
    ctx = AlertsContext(origin, engine, broadcaster, scheduler, webhooks, s.alert_stream_heartbeat_s, sinks)
    services.extras[EXTRAS_KEY] = ctx

    def start() -> None:
        broadcaster.start()
        scheduler.start()
        webhooks.start()

    def stop() -> None:
        webhooks.stop()
        scheduler.stop()
        broadcaster.stop()

    return Component(
        name="alerts",
        routers=(routes.router, threshold_routes.router),
        hooks=(engine,),
        start=start,
        stop=stop,
        extras={EXTRAS_KEY: ctx},
    )

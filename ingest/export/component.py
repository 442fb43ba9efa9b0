"""Wires the FHIR export into the service.

Always: the outbox hook (rows are written with the readings), the ``/v1/exports`` API and the
metrics. With ``RPM_FHIR_BASE_URL`` set, also the delivery (:mod:`ingest.export.delivery`): the
worker threads and their keeper. Without it, rows wait.
"""

from __future__ import annotations

import logging

from fhir_export.errors import FhirExportError
from fhir_export.table import build_table
from ingest.alerts.context import EXTRAS_KEY as ALERTS_KEY
from ingest.alerts.context import AlertsContext
from ingest.components import Component
from ingest.errors import ConfigurationError
from ingest.export import routes
from ingest.export.context import EXTRAS_KEY, ExportContext
from ingest.export.delivery import Delivery, ErrorCount
from ingest.export.destinations import reading_destinations
from ingest.export.flags import queue_flags
from ingest.export.metrics import ExportCollector
from ingest.export.outbox import OutboxWriter
from ingest.services import Services

logger = logging.getLogger(__name__)


def fhir_export_component(services: Services) -> Component:
    """The outbox hook, the exports API, metrics and (with an EHR configured) the workers."""
    s = services.settings
    try:
        table = build_table(services.pipeline.catalogue)
    except FhirExportError as exc:
        raise ConfigurationError(f"FHIR mapping table: {exc}") from exc
    writer = OutboxWriter(table, destinations=reading_destinations(s), panel_wait_s=s.fhir_panel_wait_s)
    errors = ErrorCount()
    delivery = Delivery(services, table, errors) if s.fhir_base_url else None
    ctx = ExportContext(table, writer, delivery, errors)
    services.extras[EXTRAS_KEY] = ctx
    services.metrics.registry.register(ExportCollector(services.pool, ctx.stats, lambda: errors.value))
    if delivery is None:
        logger.info("no RPM_FHIR_BASE_URL: FHIR export rows are kept until an EHR is configured")
    alerts = services.extras.get(ALERTS_KEY)
    if delivery is not None and s.fhir_export_alerts and isinstance(alerts, AlertsContext):
        alerts.sinks.append(queue_flags)  # alerts as FHIR Flags, in the alert's transaction

    return Component(
        name="fhir export",
        routers=(routes.router,),
        hooks=(writer,),
        start=None if delivery is None else delivery.start,
        stop=None if delivery is None else delivery.stop,
        extras={EXTRAS_KEY: ctx},
    )

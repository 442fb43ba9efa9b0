"""Wires the DICOM export into the service when ``RPM_DICOMWEB_URL`` is set: the sender and its
keeper run in ``serve``. Without it nothing runs and strips get no ``dicom`` outbox rows (the ECG
feature writes them only while a PACS is configured)."""

from __future__ import annotations

import logging

from ingest.components import Component
from ingest.dicom.delivery import DicomDelivery
from ingest.dicom.metrics import DicomCollector
from ingest.services import Services

logger = logging.getLogger(__name__)

EXTRAS_KEY = "dicom_export"


def dicom_component(services: Services) -> Component:
    """The DICOM sender and its /metrics, when a PACS is configured."""
    if services.settings.dicomweb_url is None:
        return Component(name="dicom export")
    delivery = DicomDelivery(services)
    services.metrics.registry.register(DicomCollector(services.pool, delivery.sender.stats))
    return Component(
        name="dicom export", start=delivery.start, stop=delivery.stop, extras={EXTRAS_KEY: delivery}
    )

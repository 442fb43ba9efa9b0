"""Wires the DICOM export into the service when a PACS is configured: ``RPM_DICOMWEB_URL``
(STOW-RS) or ``RPM_DICOM_AE`` (C-STORE; the URL wins when both are set). The sender and its keeper
run in ``serve``. Without either nothing runs and strips get no ``dicom`` outbox rows (the ECG
feature writes them only while a PACS is configured)."""

from __future__ import annotations

import logging

from dicom_export.address import AeAddress, check_ae_title
from ingest.components import Component
from ingest.dicom.delivery import DicomDelivery
from ingest.dicom.metrics import DicomCollector
from ingest.errors import ConfigurationError
from ingest.services import Services
from ingest.settings import Settings

logger = logging.getLogger(__name__)

EXTRAS_KEY = "dicom_export"


def dicom_component(services: Services) -> Component:
    """The DICOM sender and its /metrics, when a PACS is configured."""
    s = services.settings
    ae = storage_scp(s)
    if not s.dicomweb_url and ae is None:
        return Component(name="dicom export")
    delivery = DicomDelivery(services, ae)
    services.metrics.registry.register(DicomCollector(services.pool, delivery.sender.stats))
    return Component(
        name="dicom export", start=delivery.start, stop=delivery.stop, extras={EXTRAS_KEY: delivery}
    )


def storage_scp(settings: Settings) -> AeAddress | None:
    """``RPM_DICOM_AE`` parsed (None when unset or empty); a malformed one stops start-up."""
    text = (settings.dicom_ae or "").strip()
    try:
        check_ae_title(settings.dicom_calling_ae)
        return AeAddress.parse(text) if text else None
    except ValueError as exc:
        raise ConfigurationError(f"RPM_DICOM_AE / RPM_DICOM_CALLING_AE: {exc}") from None

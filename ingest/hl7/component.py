"""Wires HL7 v2 into ``serve``: with ``RPM_HL7_MLLP_URL`` the ORU^R01 sender (its outbox rows are
written by the export's outbox hook, see ``ingest.export.destinations``), with ``RPM_HL7_LISTEN``
the ADT listener. Neither set: nothing runs.
"""

from __future__ import annotations

import logging
from typing import Final

from hl7_export import Header, Hl7Error, OruBuilder, build_codes
from ingest.components import Component
from ingest.errors import ConfigurationError
from ingest.hl7.adt import AdtHandler
from ingest.hl7.delivery import Hl7Delivery
from ingest.hl7.listener import AdtListener, ListenerLimits
from ingest.hl7.metrics import Hl7Collector
from ingest.services import Services
from ingest.settings import Settings

logger = logging.getLogger(__name__)

EXTRAS_KEY: Final = "hl7"


def header_from(settings: Settings, facility: str) -> Header:
    return Header(
        sending_application=settings.hl7_sending_application,
        sending_facility=settings.hl7_sending_facility or facility,
        receiving_application=settings.hl7_receiving_application,
        receiving_facility=settings.hl7_receiving_facility,
        mrn_authority=settings.hl7_mrn_authority,
    )


class Hl7Parts:
    """What runs (for the tests and the benchmark: the listener's bound port, the sender's stats)."""

    def __init__(self, delivery: Hl7Delivery | None, listener: AdtListener | None) -> None:
        self.delivery = delivery
        self.listener = listener

    def start(self) -> None:
        if self.listener is not None:
            self.listener.start()
        if self.delivery is not None:
            self.delivery.start()

    def stop(self) -> None:
        if self.delivery is not None:
            self.delivery.stop()
        if self.listener is not None:
            self.listener.stop()


def hl7_component(services: Services) -> Component:
    s = services.settings
    delivery = listener = None
    if s.hl7_mllp_url:
        try:
            codes = build_codes(services.pipeline.catalogue)
        except Hl7Error as exc:
            raise ConfigurationError(f"HL7 code table: {exc}") from exc
        delivery = Hl7Delivery(services, OruBuilder(header_from(s, "default"), codes))
    if s.hl7_listen:
        host, _, port = s.hl7_listen.rpartition(":")
        handler = AdtHandler(services, header_from(s, s.hl7_adt_clinic), clinic_id=s.hl7_adt_clinic)
        limits = ListenerLimits(
            max_message_bytes=s.hl7_max_message_bytes,
            read_timeout_s=s.hl7_read_timeout_s,
            idle_timeout_s=s.hl7_idle_timeout_s,
            max_connections=s.hl7_max_connections,
            received_keep_days=s.hl7_received_keep_days,
        )
        listener = AdtListener(host.strip("[]"), int(port), handler, limits)
    parts = Hl7Parts(delivery, listener)
    services.metrics.registry.register(
        Hl7Collector(
            lambda: None if delivery is None else delivery.sender.stats,
            lambda: None if listener is None else dict(listener.handler.answered),
        )
    )
    running = delivery is not None or listener is not None
    return Component(
        name="hl7",
        start=parts.start if running else None,
        stop=parts.stop if running else None,
        extras={EXTRAS_KEY: parts},
    )

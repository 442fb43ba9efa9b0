"""Wires ECG strips into the service: the list and fetch API and the outbox rows of new strips.

Strips are parsed and stored by the one ingest path (``ingest.pipeline``); this component adds
what follows a stored strip. Delivery is each destination's own (the FHIR export's workers read
``ecg`` rows; the DICOM export's read theirs).
"""

from __future__ import annotations

from ingest.components import Component
from ingest.ecg import routes
from ingest.ecg.outbox import StripOutboxWriter, ecg_destinations
from ingest.services import Services


def ecg_component(services: Services) -> Component:
    """The ECG routes and the outbox hook on newly stored strips."""
    writer = StripOutboxWriter(ecg_destinations(services.settings))
    return Component(name="ecg", routers=(routes.router,), strip_hooks=(writer,))

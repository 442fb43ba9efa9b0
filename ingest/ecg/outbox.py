"""The outbox rows of ECG strips: one per destination, written in the ingest transaction.

A strip keeps its samples in ``ecg_strips``; its outbox rows name it (``item_ref`` = the strip's
id, kind ``ecg``) and each destination's reader loads it when a worker claims the row
(``ingest.ecg.store.strip_for_export``). ``enqueue_items`` ignores a row that exists, so a strip
is exported once per destination.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

import psycopg

from ingest.ecg.store import StoredStrip
from ingest.export.destinations import DICOM, FHIR
from ingest.export.outbox.items import NewItem, enqueue_items
from ingest.settings import Settings

logger = logging.getLogger(__name__)

KIND: Final = "ecg"


def ecg_destinations(settings: Settings) -> tuple[str, ...]:
    """Where each stored strip goes: the EHR always (rows wait until an EHR is configured and the
    patient linked), the PACS while ``RPM_DICOMWEB_URL`` (STOW-RS) or ``RPM_DICOM_AE`` (C-STORE) is
    set."""
    destinations = [FHIR]
    if settings.dicomweb_url or (settings.dicom_ae or "").strip():
        destinations.append(DICOM)
    return tuple(destinations)


class StripOutboxWriter:
    """The pipeline's hook on newly stored strips: their outbox rows, same transaction."""

    def __init__(self, destinations: Sequence[str]) -> None:
        self.destinations = tuple(destinations)

    def __call__(self, conn: psycopg.Connection[Any], strips: Sequence[StoredStrip]) -> None:
        items = [
            NewItem(
                patient_id=stored.patient_id,
                device_id=stored.strip.device_id,
                destination=destination,
                kind=KIND,
                item_ref=str(stored.id),
                measured_at=stored.strip.measured_at,
            )
            for stored in strips
            for destination in self.destinations
        ]
        written = enqueue_items(conn, items)
        logger.debug("%d ECG strips: %d outbox rows", len(strips), written)

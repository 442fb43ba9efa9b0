"""One round of the DICOM export: claim rows, build each strip's object, store it, record the outcome.

Per row: the object is built (pure; a strip the IOD cannot hold is parked with the reason) and
sent alone with STOW-RS, so the answer is about that row alone. Stored (or already stored) →
``sent`` with the SOP Instance UID as the row's reference; refused for its content → parked with
the PACS's reason; PACS unavailable → this row and the rest of the claim are retried later with
exponential backoff and jitter (never sooner than ``Retry-After``): a PACS that is down is asked
once per round, not once per row.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from dicom_export import PacsUnavailable, RefusedByPacs, UnsupportedStrip, build_object
from dicom_export.models import DicomObject
from dicom_export.stow import Stored
from fhir_export.counters import Counters
from fhir_export.outbox import Claim, Delivered, Outbox, OutboxItem
from fhir_export.worker import Backoff
from ingest.dicom.reader import DicomJob

logger = logging.getLogger(__name__)


class Store(Protocol):
    """What the round needs from :class:`dicom_export.stow.StowClient`."""

    def store(self, obj: DicomObject) -> Stored: ...


@dataclass
class DicomStats(Counters):
    sent: int = 0
    already_stored: int = 0
    parked: int = 0
    deferred: int = 0


@dataclass(frozen=True, slots=True)
class Round:
    """What one round did: rows claimed, and whether the PACS was unavailable."""

    claimed: int
    pacs_unavailable: bool = False


class DicomSender:
    def __init__(
        self,
        outbox: Outbox[DicomJob],
        pacs: Store,
        *,
        batch_size: int = 20,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._outbox = outbox
        self._pacs = pacs
        self.batch_size = batch_size
        self._backoff = backoff or Backoff()
        self._rng = rng or random.Random()
        self.stats = DicomStats()

    def run_once(self) -> Round:
        with self._outbox.claim(self.batch_size) as claim:
            rows = list(claim.items)
            for index, row in enumerate(rows):
                try:
                    self._send(claim, row)
                except PacsUnavailable as exc:
                    self._defer(claim, rows[index:], exc)
                    return Round(len(rows), pacs_unavailable=True)
            return Round(len(rows))

    def _send(self, claim: Claim[DicomJob], row: OutboxItem[DicomJob]) -> None:
        job = row.item
        try:
            obj = build_object(job.strip, job.patient, job.clinic)
        except UnsupportedStrip as exc:
            self._park(claim, row, f"cannot be a DICOM ECG object: {exc.reason}")
            return
        try:
            stored = self._pacs.store(obj)
        except RefusedByPacs as exc:
            self._park(claim, row, str(exc))
            return
        claim.mark_sent([Delivered(row.id, stored.sop_instance_uid, stored.created)])
        self.stats.add(sent=1, already_stored=0 if stored.created else 1)

    def _park(self, claim: Claim[DicomJob], row: OutboxItem[DicomJob], reason: str) -> None:
        # The reason may quote patient data back from the PACS: kept on the row, logged at DEBUG.
        logger.warning("parked DICOM outbox row %d (reason kept on the row)", row.id)
        logger.debug("parked DICOM outbox row %d: %s", row.id, reason)
        claim.mark_parked(row.id, reason)
        self.stats.add(parked=1)

    def _defer(
        self, claim: Claim[DicomJob], rows: Sequence[OutboxItem[DicomJob]], exc: PacsUnavailable
    ) -> None:
        attempts = max(row.attempts for row in rows)
        delay = self._backoff.delay(attempts, exc.retry_after, self._rng)
        # The PACS's answer may quote patient data: on the rows, and in the log at DEBUG only.
        logger.warning("DICOM export of %d rows deferred %.0fs (PACS unavailable)", len(rows), delay)
        logger.debug("DICOM export deferred: %s", exc.reason)
        claim.mark_retry([row.id for row in rows], str(exc), delay)
        self.stats.add(deferred=len(rows))

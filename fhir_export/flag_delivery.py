"""Delivery of alerts as Flags: the ``flag`` kind of the export worker's claimed rows.

A Flag's ``flag-detail`` refers to the Observations behind the alert, and never to one the EHR
does not hold: before a Flag goes, the EHR is searched for those Observations by their stable
identifiers (one search per Flag). While some are missing (their rows are still on the way, or
waiting for the same link), the Flag waits too (the row is retried after ``detail_retry_s``). A
Flag whose Observations are still missing ``detail_wait_s`` after the alert opened goes with
the references found (an Observation refused for good must not keep the alert out of the EHR).
Each Flag is one small transaction, so one refused Flag never holds back another.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Final, Protocol

from fhir_export.bundle import EntryOutcome
from fhir_export.errors import (
    AuthError,
    MappingError,
    PermanentDeliveryError,
    ReadError,
    TransientDeliveryError,
)
from fhir_export.flags import flag_entry, flag_resource, observation_identifiers
from fhir_export.mapping import ObservationMapper
from fhir_export.models import ExportItem, Identifier
from fhir_export.outbox import Claim, Delivered, OutboxItem
from fhir_export.reads import FhirReader

logger = logging.getLogger(__name__)

DETAIL_RETRY_S: Final = 15.0
DETAIL_WAIT_S: Final = 3600.0


class Transport(Protocol):
    def transaction(self, bundle: dict[str, object]) -> list[EntryOutcome]: ...


class Backoff(Protocol):
    def delay(self, attempts: int, retry_after: float | None, rng: random.Random) -> float: ...


class FlagSender:
    """Sends the ``flag`` rows of a claim, one transaction each."""

    def __init__(
        self,
        transport: Transport,
        reader: FhirReader,
        mapper: ObservationMapper,
        backoff: Backoff,
        *,
        detail_retry_s: float = DETAIL_RETRY_S,
        detail_wait_s: float = DETAIL_WAIT_S,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._transport = transport
        self._reader = reader
        self._mapper = mapper
        self._backoff = backoff
        self._detail_retry_s = detail_retry_s
        self._detail_wait_s = detail_wait_s
        self._clock = clock
        self._rng = rng or random.Random()
        self.sent = 0
        self.waited_for_observations = 0

    def deliver(self, claim: Claim[ExportItem], rows: Sequence[OutboxItem[ExportItem]]) -> None:
        for row in rows:
            self._one(claim, row)

    def _one(self, claim: Claim[ExportItem], row: OutboxItem[ExportItem]) -> None:
        item, patient = row.item.flag, row.item.fhir_patient_id
        assert item is not None
        if patient is None:
            claim.mark_parked(row.id, "cannot map: the patient has no FHIR Patient id")
            return
        wanted = observation_identifiers(self._mapper, item)
        try:
            found = self._observations(wanted)
        except ReadError as exc:
            self._retry(claim, row, f"searching the Flag's Observations failed: {exc.reason}", None)
            return
        except AuthError as exc:
            self._retry(claim, row, f"authentication: {exc.reason}", None)
            return
        missing = [i.value for i in wanted if i not in found]
        waited = self._clock() - item.opened_at.timestamp()
        if missing and waited < self._detail_wait_s:
            self.waited_for_observations += 1
            reason = f"waiting for its Observation(s) to reach the EHR first: {', '.join(missing)}"
            claim.mark_retry([row.id], reason[:1000], self._detail_retry_s)
            return
        try:
            resource = flag_resource(item, patient, [found[i] for i in wanted if i in found])
        except MappingError as exc:
            claim.mark_parked(row.id, f"cannot map: {exc.reason}")
            return
        bundle: dict[str, object] = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [flag_entry(item, resource)],
        }
        try:
            (outcome,) = self._transport.transaction(bundle)
        except TransientDeliveryError as exc:
            self._retry(claim, row, exc.reason, exc.retry_after)
            return
        except AuthError as exc:
            self._retry(claim, row, f"authentication: {exc.reason}", None)
            return
        except PermanentDeliveryError as exc:
            claim.mark_parked(row.id, f"EHR refused the Flag (HTTP {exc.status}): {exc.reason}")
            return
        if outcome.ok:
            claim.mark_sent([Delivered(row.id, outcome.reference, outcome.created)])
            self.sent += 1
        elif outcome.status >= 500 or outcome.status == 429:
            self._retry(claim, row, outcome.reason or f"entry answered HTTP {outcome.status}", None)
        else:
            claim.mark_parked(row.id, f"EHR refused the Flag: {outcome.reason or outcome.status}")

    def _observations(self, wanted: list[Identifier]) -> dict[Identifier, str]:
        """Which of the Observations the EHR holds: identifier -> ``Observation/<id>``."""
        if not wanted:
            return {}
        tokens = ",".join(f"{i.system}|{i.value}" for i in wanted)
        page = self._reader.search_page("Observation", {"identifier": tokens, "_count": str(len(wanted) * 2)})
        found: dict[Identifier, str] = {}
        for resource in page.resources:
            fhir_id = resource.get("id")
            for raw in resource.get("identifier") or []:
                if not isinstance(raw, dict):
                    continue
                identifier = Identifier(str(raw.get("system")), str(raw.get("value")))
                if identifier in wanted and isinstance(fhir_id, str):
                    found[identifier] = f"Observation/{fhir_id}"
        return found

    def _retry(
        self, claim: Claim[ExportItem], row: OutboxItem[ExportItem], reason: str, after: float | None
    ) -> None:
        delay = self._backoff.delay(row.attempts, after, self._rng)
        logger.warning("Flag export deferred %.0fs (reason kept on the row)", delay)
        claim.mark_retry([row.id], reason[:1000], delay)

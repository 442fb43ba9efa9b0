"""The delivery loop: claim outbox rows, map them, send one transaction, record the outcome.

Rows that cannot be coded, or that the EHR refuses for their content, are parked with the
reason; a refused bundle whose culprit the server does not name is split in halves until the
bad row is isolated, so one bad row never holds back the others. Network failures, 5xx, 429
and authentication trouble defer the rows with exponential backoff and jitter (never sooner
than the server's ``Retry-After``).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from fhir_export.bundle import BundleEntry, EntryOutcome, transaction
from fhir_export.counters import Counters
from fhir_export.errors import (
    AuthError,
    MappingError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from fhir_export.flag_delivery import FlagSender
from fhir_export.mapping import ObservationMapper
from fhir_export.models import DeviceInfo, ExportItem, MappedObservation
from fhir_export.outbox import Claim, Delivered, Outbox, OutboxItem

logger = logging.getLogger(__name__)

MAX_DEVICE_CACHE: Final = 100_000


class Transport(Protocol):
    """What the loop needs from :class:`fhir_export.client.FhirClient`."""

    def transaction(self, bundle: dict[str, object]) -> list[EntryOutcome]: ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """Row-level deferral: ``initial * 2**attempts`` capped at ``maximum``, with jitter."""

    initial_s: float = 5.0
    maximum_s: float = 900.0
    auth_s: float = 60.0

    def delay(self, attempts: int, retry_after: float | None, rng: random.Random) -> float:
        ceiling = min(self.maximum_s, self.initial_s * (2.0 ** min(attempts, 30)))
        jittered = ceiling / 2 + rng.uniform(0, ceiling / 2)
        return max(jittered, retry_after or 0.0)


@dataclass
class ExportStats(Counters):
    sent: int = 0
    created: int = 0
    already_present: int = 0
    parked: int = 0
    deferred: int = 0
    bundles: int = 0


@dataclass(frozen=True, slots=True)
class _Ready:
    row: OutboxItem[ExportItem]
    mapped: MappedObservation


class ExportWorker:
    def __init__(
        self,
        outbox: Outbox[ExportItem],
        transport: Transport,
        mapper: ObservationMapper,
        *,
        bundle_size: int = 100,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        flags: FlagSender | None = None,
    ) -> None:
        if not 1 <= bundle_size <= 1000:
            raise ValueError("bundle_size must be between 1 and 1000")
        self._outbox = outbox
        self._transport = transport
        self._mapper = mapper
        self._bundle_size = bundle_size
        self._backoff = backoff or Backoff()
        self._rng = rng or random.Random()
        self._devices: dict[str, str] = {}  # device id -> "Device/<id>" known to the EHR
        self._flags = flags  # rows of kind "flag": alerts as Flags (fhir_export.flag_delivery)
        self.stats = ExportStats()

    def run(self, stop: threading.Event, *, idle_wait_s: float = 1.0) -> None:
        """Deliver until ``stop`` is set; finishes the bundle in hand."""
        logger.info("FHIR export worker started (bundle size %d)", self._bundle_size)
        while not stop.is_set():
            handled = self.run_once()
            if handled < self._bundle_size:
                stop.wait(idle_wait_s)
        logger.info("FHIR export worker stopped")

    def run_once(self) -> int:
        """Claim and handle one batch; return how many rows it held."""
        with self._outbox.claim(self._bundle_size) as claim:
            rows = list(claim.items)
            if not rows:
                return 0
            ready: list[_Ready] = []
            flags: list[OutboxItem[ExportItem]] = []
            for row in rows:
                if row.item.flag is not None:
                    flags.append(row)
                    continue
                try:
                    device_ref = self._devices.get(row.item.device.device_id)
                    reference = device_ref or self._mapper.device_full_url(row.item.device.device_id)
                    ready.append(_Ready(row, self._mapper.observation(row.item, reference)))
                except MappingError as exc:
                    self._park(claim, row, f"cannot map: {exc.reason}")
            if ready:
                self._deliver(claim, ready)
            if flags:
                self._send_flags(claim, flags)
            return len(rows)

    def _send_flags(self, claim: Claim[ExportItem], rows: list[OutboxItem[ExportItem]]) -> None:
        if self._flags is None:
            for row in rows:
                self._park(claim, row, "this worker does not export Flags")
            return
        self._flags.deliver(claim, rows)

    # ------------------------------------------------------------------ delivery

    def _entries(self, batch: Sequence[_Ready]) -> tuple[list[BundleEntry], dict[str, int]]:
        entries: list[BundleEntry] = []
        device_entries: dict[str, int] = {}
        for ready in batch:
            device: DeviceInfo = ready.row.item.device
            # The Device goes in whenever an Observation refers to it by its fullUrl (mapped
            # before its reference was known); conditional create finds it if it exists.
            reference = ready.mapped.resource.get("device")
            full_url = self._mapper.device_full_url(device.device_id)
            if reference != {"reference": full_url} or device.device_id in device_entries:
                continue
            identifier = self._mapper.device_identifier(device.device_id)
            device_entries[device.device_id] = len(entries)
            entries.append(
                BundleEntry(
                    full_url=self._mapper.full_url(identifier),
                    identifier=identifier,
                    resource=self._mapper.device(device, ready.row.item.profile),
                )
            )
        companions: set[str] = set()  # e.g. the home gateway's Device (PHD profile)
        for ready in batch:
            for identifier, resource in ready.mapped.companions:
                full_url = self._mapper.full_url(identifier)
                if full_url not in companions:
                    companions.add(full_url)
                    entries.append(BundleEntry(full_url=full_url, identifier=identifier, resource=resource))
        for ready in batch:
            entries.append(
                BundleEntry(
                    full_url=self._mapper.full_url(ready.mapped.identifier),
                    identifier=ready.mapped.identifier,
                    resource=ready.mapped.resource,
                )
            )
        return entries, device_entries

    def _deliver(self, claim: Claim[ExportItem], batch: list[_Ready]) -> None:
        entries, device_entries = self._entries(batch)
        first_observation = len(entries) - len(batch)
        self.stats.add(bundles=1)
        try:
            outcomes = self._transport.transaction(transaction(entries))
        except TransientDeliveryError as exc:
            self._defer(claim, batch, exc.reason, exc.retry_after)
            return
        except AuthError as exc:
            logger.error("EHR authentication failed: %s", exc.reason)
            self._defer(claim, batch, f"authentication: {exc.reason}", self._backoff.auth_s)
            return
        except PermanentDeliveryError as exc:
            self._refused(claim, batch, exc, device_entries, first_observation)
            return

        for device_id, index in device_entries.items():
            reference = outcomes[index].reference if outcomes[index].ok else None
            if reference and len(self._devices) < MAX_DEVICE_CACHE:
                self._devices[device_id] = reference
        delivered: list[Delivered] = []
        retry: list[_Ready] = []
        retry_reason = ""
        for offset, ready in enumerate(batch):
            outcome = outcomes[first_observation + offset]
            if outcome.ok:
                delivered.append(Delivered(ready.row.id, outcome.reference, outcome.created))
            elif outcome.status >= 500 or outcome.status == 429:
                retry.append(ready)
                retry_reason = outcome.reason or f"entry answered HTTP {outcome.status}"
            else:
                self._park(claim, ready.row, outcome.reason or f"EHR answered {outcome.status}")
        if delivered:
            claim.mark_sent(delivered)
            created = sum(1 for d in delivered if d.created)
            self.stats.add(sent=len(delivered), created=created, already_present=len(delivered) - created)
            logger.debug("delivered %d observations (%d new)", len(delivered), created)
        if retry:
            self._defer(claim, retry, retry_reason, None)

    def _refused(
        self,
        claim: Claim[ExportItem],
        batch: list[_Ready],
        error: PermanentDeliveryError,
        device_entries: dict[str, int],
        first_observation: int,
    ) -> None:
        """Park exactly the rows the EHR refused; send the others again."""
        # A cached Device reference may be what failed (e.g. deleted in the EHR): forget them.
        for ready in batch:
            self._devices.pop(ready.row.item.device.device_id, None)
        culprits: dict[int, str] = {}
        for index, reasons in error.entry_issues.items():
            text = "; ".join(reasons)
            if index >= first_observation and index - first_observation < len(batch):
                culprits[index - first_observation] = text
            else:
                for device_id, device_index in device_entries.items():
                    if device_index == index:
                        for offset, ready in enumerate(batch):
                            if ready.row.item.device.device_id == device_id:
                                culprits[offset] = f"Device refused: {text}"
        if culprits:
            for offset, text in culprits.items():
                self._park(claim, batch[offset].row, f"EHR refused (HTTP {error.status}): {text}")
            rest = [ready for offset, ready in enumerate(batch) if offset not in culprits]
            if rest:
                self._deliver(claim, rest)
            return
        if len(batch) == 1:
            self._park(claim, batch[0].row, f"EHR refused (HTTP {error.status}): {error.reason}")
            return
        middle = len(batch) // 2
        logger.info("EHR refused a bundle of %d without naming an entry; splitting", len(batch))
        self._deliver(claim, batch[:middle])
        self._deliver(claim, batch[middle:])

    def _park(self, claim: Claim[ExportItem], row: OutboxItem[ExportItem], reason: str) -> None:
        # The EHR's reason may quote patient identifiers: it is kept on the row, logged at DEBUG.
        logger.warning("parked outbox row %d (reason kept on the row)", row.id)
        logger.debug("parked outbox row %d: %s", row.id, reason)
        claim.mark_parked(row.id, reason)
        self.stats.add(parked=1)

    def _defer(
        self, claim: Claim[ExportItem], batch: Sequence[_Ready], reason: str, retry_after: float | None
    ) -> None:
        attempts = max(ready.row.attempts for ready in batch)
        delay = self._backoff.delay(attempts, retry_after, self._rng)
        logger.warning("FHIR export of %d rows deferred %.0fs (reason kept on the rows)", len(batch), delay)
        logger.debug("FHIR export deferred: %s", reason)
        claim.mark_retry([ready.row.id for ready in batch], reason, delay)
        self.stats.add(deferred=len(batch))

"""Links patients to the EHR by MRN: right after they are registered, on demand, and again later.

Nothing waits for the EHR here but this loop: a registration (HTTP, HL7 ADT, import) only
commits the patient, and the loop, polling every ``poll_s`` (or woken), finds it among the
unlinked patients never looked up. Pending and not-found patients come back every
``retry_s``. Answers are cached for the run: a Patient found once is not searched again, and a
negative answer is kept until it is due again, so a burst of registrations or a retry storm
costs the EHR one search per MRN.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import psycopg
from psycopg_pool import ConnectionPool

from fhir_export.errors import AuthError, ReadError
from fhir_export.patients import LookupResult, identifier_param, lookup_result
from fhir_export.reads import FhirReader
from ingest.background import BackgroundThread
from ingest.ehr import store

logger = logging.getLogger(__name__)

MAX_CACHE: Final = 100_000
BATCH: Final = 20
NO_SYSTEM: Final = LookupResult(
    "pending", "RPM_FHIR_PATIENT_IDENTIFIER_SYSTEM is not set: the EHR cannot be searched by MRN"
)
NO_EHR: Final = LookupResult("pending", "RPM_FHIR_BASE_URL is not set: there is no EHR to search")


@dataclass
class LinkStats:
    lookups: int = 0
    linked: int = 0
    not_found: int = 0
    ambiguous: int = 0
    errors: int = 0
    cache_hits: int = 0


class LookupCache:
    """MRN -> last answer, for this run: found Patients for good, other answers for ``ttl_s``."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._items: OrderedDict[str, tuple[LookupResult, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> LookupResult | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            result, expires = found
            if result.status != "linked" and self._clock() >= expires:
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return result

    def put(self, key: str, result: LookupResult) -> None:
        if result.status in ("pending", "error"):
            return  # the EHR could not answer: ask it again next time
        with self._lock:
            self._items[key] = (result, self._clock() + self._ttl_s)
            self._items.move_to_end(key)
            while len(self._items) > MAX_CACHE:
                self._items.popitem(last=False)


class Linker:
    """Looks patients up in the EHR and records what it found (``reader`` None: no EHR)."""

    def __init__(
        self,
        pool: ConnectionPool,
        reader: FhirReader | None,
        *,
        identifier_system: str | None,
        retry_s: float,
        poll_s: float = 1.0,
    ) -> None:
        self._pool = pool
        self._reader = reader
        self._system = identifier_system or None
        self._retry_s = retry_s
        self._poll_s = poll_s
        self.cache = LookupCache(retry_s)
        self.stats = LinkStats()
        self._wake = threading.Event()
        self._background = BackgroundThread("ehr-patient-links", self._loop)

    @property
    def enabled(self) -> bool:
        """Can patients be looked up at all (an EHR and the MRN identifier system are set)?"""
        return self._reader is not None and self._system is not None

    # ------------------------------------------------------------------ running

    def start(self) -> None:
        if self.enabled:
            self._background.start()

    def stop(self) -> None:
        self._background.stopping.set()
        self._wake.set()
        self._background.stop()

    def wake(self) -> None:
        """Look for due patients now (a registration just committed)."""
        self._wake.set()

    def _loop(self) -> None:
        stopping = self._background.stopping
        while not stopping.is_set():
            try:
                handled = self.run_once()
            except psycopg.Error as exc:
                logger.warning("EHR patient links: storage unavailable (%s)", type(exc).__name__)
                handled = 0
            except Exception:  # noqa: BLE001 - the loop must outlive one bad round
                logger.exception("EHR patient links: look-up round failed")
                handled = 0
            if handled < BATCH:
                self._wake.wait(self._poll_s)
                self._wake.clear()

    def run_once(self, limit: int = BATCH) -> int:
        """Look up the patients due now (at most ``limit``); return how many."""
        if not self.enabled:
            return 0
        with self._pool.connection() as conn, conn.transaction():
            due = store.claim_due(conn, retry_s=self._retry_s, limit=limit)
        for patient in due:
            self._look_up_and_record(patient)
        return len(due)

    def link_now(self, patient_id: UUID) -> dict[str, Any] | None:
        """``POST /v1/patients/{id}/ehr-link``: ask the EHR now (not from the cache); the row."""
        with self._pool.connection() as conn:
            patient = store.patient_for_lookup(conn, patient_id)
        if patient is None:
            return None
        return self._look_up_and_record(patient, fresh=True)

    # ------------------------------------------------------------------ one patient

    def _look_up_and_record(self, patient: store.DuePatient, *, fresh: bool = False) -> dict[str, Any] | None:
        result = self.look_up(patient.mrn, fresh=fresh)
        with self._pool.connection() as conn, conn.transaction():
            row = store.record(conn, patient.id, result)
        logger.debug("EHR look-up of patient %s: %s", patient.id, result.status)
        return row

    def look_up(self, mrn: str, *, fresh: bool = False) -> LookupResult:
        """Search the EHR for the Patient carrying this MRN (cached for the run)."""
        if self._reader is None:
            return NO_EHR
        if self._system is None:
            return NO_SYSTEM
        if not fresh:
            cached = self.cache.get(mrn)
            if cached is not None:
                self.stats.cache_hits += 1
                return cached
        result = self._search(self._reader, self._system, mrn)
        self.cache.put(mrn, result)
        self.stats.lookups += 1
        counter = {"linked": "linked", "not_found": "not_found", "ambiguous": "ambiguous"}.get(
            result.status, "errors"
        )
        setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        return result

    @staticmethod
    def _search(reader: FhirReader, system: str, mrn: str) -> LookupResult:
        try:
            page = reader.search_page(
                "Patient", {"identifier": identifier_param(system, mrn), "_count": "10"}
            )
        except ReadError as exc:
            if exc.transient:
                return LookupResult("pending", f"the EHR could not be asked: {exc.reason}")
            return LookupResult("error", f"the EHR's answer was unusable: {exc.reason}")
        except AuthError as exc:
            return LookupResult("pending", f"authentication to the EHR failed: {exc.reason}")
        return lookup_result(page.resources, system, mrn, page.total)

"""Delivery of the FHIR export: ``RPM_FHIR_WORKERS`` worker threads, each claiming, sending and
recording bundles on its own (any number of them, in any number of processes, share the outbox
safely), and one keeper thread that renews the workers' leases and does the upkeep (releasing rows
of patients linked by other paths, purging old sent rows).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any, Final

import psycopg

from fhir_export.client import FhirClient, build_http_client
from fhir_export.errors import FhirExportError
from fhir_export.factory import build_auth
from fhir_export.flag_delivery import FlagSender
from fhir_export.mapping import ObservationMapper
from fhir_export.models import ExportItem
from fhir_export.reads import FhirReader
from fhir_export.table import MappingTable
from fhir_export.worker import Backoff, ExportWorker
from ingest.errors import ConfigurationError
from ingest.export import store
from ingest.export.fhir_devices import DeviceRegistry
from ingest.export.keeper import keep_leases
from ingest.export.outbox import PgOutbox
from ingest.export.rounds import Pacing, RoundOutcome, run_rounds
from ingest.services import Services

logger = logging.getLogger(__name__)

UPKEEP_INTERVAL_S: Final = 60.0
MAX_STORAGE_BACKOFF_S: Final = 30.0
STOP_GRACE_S: Final = 30.0


class ErrorCount:
    """Unexpected worker errors in this process (for /metrics)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self) -> None:
        with self._lock:
            self.value += 1


class Delivery:
    """The export workers and their keeper thread."""

    def __init__(self, services: Services, table: MappingTable, errors: ErrorCount) -> None:
        s = services.settings
        assert s.fhir_base_url is not None
        self._services = services
        self._errors = errors
        self._stop = threading.Event()
        conninfo = services.pool.conninfo
        self._conninfo = conninfo if isinstance(conninfo, str) else conninfo()
        self._threads: list[threading.Thread] = []
        self.http = build_http_client(timeout_s=s.fhir_timeout_s)
        try:
            auth = build_auth(
                s.fhir_auth,
                self.http,
                base_url=s.fhir_base_url,
                token=s.fhir_token.get_secret_value() if s.fhir_token else None,
                client_id=s.fhir_client_id,
                private_key_file=s.fhir_private_key_file,
                token_url=s.fhir_token_url,
            )
        except FhirExportError as exc:
            self.http.close()
            raise ConfigurationError(f"FHIR export: {exc}") from exc
        self.client = FhirClient(self.http, s.fhir_base_url, auth)
        mapper = ObservationMapper(table)
        self.registry = DeviceRegistry(
            self.client, services.pool, base_url=self.client.base_url, device_system=mapper.device_system
        )
        me = f"{socket.gethostname()}:{os.getpid()}"
        self.outboxes: list[PgOutbox[ExportItem]] = [
            PgOutbox(services.pool, worker=f"{me}:fhir-export-{n}", lease_s=s.fhir_lease_s)
            for n in range(s.fhir_workers)
        ]
        # Alerts as Flags (fhir_export.flag_delivery): their Observations are looked for first.
        self.flags = FlagSender(self.client, FhirReader(self.http, s.fhir_base_url, auth), mapper, Backoff())
        self.workers = [
            ExportWorker(outbox, self.registry, mapper, bundle_size=s.fhir_bundle_size, flags=self.flags)
            for outbox in self.outboxes
        ]

    def start(self) -> None:
        s = self._services.settings
        for n, worker in enumerate(self.workers):
            thread = threading.Thread(target=self._work, args=(worker,), name=f"fhir-export-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        keeper = threading.Thread(target=self._keep, name="fhir-export-keeper", daemon=True)
        keeper.start()
        self._threads.append(keeper)
        logger.info(
            "FHIR export to %s: %d worker(s), bundles of %d, %s auth",
            self.client.base_url, len(self.workers), s.fhir_bundle_size, s.fhir_auth,
        )  # fmt: skip

    def stop(self) -> None:
        """Let each worker finish the bundle in hand; rows not recorded come back with their lease."""
        self._stop.set()
        grace = min(STOP_GRACE_S, self._services.settings.fhir_timeout_s + 5)
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        # A request still hanging is cut: its worker records the rows as deferred (or, if it
        # cannot, they come back when their lease runs out).
        self.http.close()
        for thread in self._threads:
            thread.join(5)
        if any(thread.is_alive() for thread in self._threads):
            logger.warning("FHIR export workers did not stop in time; their rows return with the lease")

    def _work(self, worker: ExportWorker) -> None:
        s = self._services.settings
        pacing = Pacing(s.fhir_poll_interval_s, s.fhir_bundle_size, MAX_STORAGE_BACKOFF_S)
        run_rounds(
            "FHIR export",
            lambda: RoundOutcome(worker.run_once()),
            pacing,
            self._stop,
            logger,
            self._errors.add,
        )

    def _keep(self) -> None:
        """Renew the workers' leases (on a connection of its own) and do the upkeep."""
        next_upkeep = 0.0

        def tend(conn: psycopg.Connection[Any]) -> None:
            nonlocal next_upkeep
            for outbox in self.outboxes:
                outbox.renew(conn)
            if time.monotonic() >= next_upkeep:
                next_upkeep = time.monotonic() + UPKEEP_INTERVAL_S
                self._upkeep()

        interval = max(0.2, self._services.settings.fhir_lease_s / 3)
        keep_leases("FHIR export", self._conninfo, interval, self._stop.wait, tend, logger)

    def _upkeep(self) -> None:
        with self._services.transaction() as conn:
            released = store.release_linked(conn)
            purged = store.purge_sent(conn, keep_days=self._services.settings.fhir_keep_sent_days)
        if released or purged:
            logger.info("FHIR outbox upkeep: %d rows released, %d old sent rows purged", released, purged)

"""Runs the DICOM export in ``serve``: one sender thread and a keeper renewing its claim leases on
a connection of its own (a slow PACS never costs the rows their lease). The sender stores with
STOW-RS when ``RPM_DICOMWEB_URL`` is set, else with C-STORE to ``RPM_DICOM_AE``.

Stopping lets the request in hand finish (at most the request timeout), then closes the HTTP
client; rows not recorded are released with their lease and go out again (their UIDs are derived,
so the PACS files them once).
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Final

import httpx

from dicom_export.address import AeAddress
from dicom_export.cstore import CStoreClient
from dicom_export.stow import StowClient
from fhir_export.worker import Backoff
from ingest.background import BackgroundThread
from ingest.dicom.reader import DicomJob, dicom_reader
from ingest.dicom.sender import DicomSender, Store
from ingest.export.destinations import DICOM
from ingest.export.keeper import keep_leases
from ingest.export.outbox.claims import PgOutbox
from ingest.export.rounds import Pacing, RoundOutcome, run_rounds
from ingest.services import Services

logger = logging.getLogger(__name__)

MAX_PAUSE_S: Final = 60.0


class DicomDelivery:
    """``ae``: the Storage SCP for C-STORE, used when no DICOMweb URL is set."""

    def __init__(self, services: Services, ae: AeAddress | None = None) -> None:
        s = services.settings
        self._services = services
        self.http: httpx.Client | None = None
        self.pacs: Store
        if s.dicomweb_url:
            self.http = httpx.Client(
                timeout=httpx.Timeout(s.dicom_timeout_s, connect=min(10.0, s.dicom_timeout_s))
            )
            self.pacs = StowClient(self.http, s.dicomweb_url)
            # Credentials in the URL (HTTP Basic) stay out of the log.
            target = httpx.URL(s.dicomweb_url).copy_with(username=None, password=None)
            self.target = f"{target} (STOW-RS)"
        else:
            assert ae is not None
            self.pacs = CStoreClient(ae, calling_ae=s.dicom_calling_ae, timeout_s=s.dicom_timeout_s)
            self.target = f"{ae} (C-STORE as {s.dicom_calling_ae.strip()})"
        me = f"{socket.gethostname()}:{os.getpid()}"
        self.outbox: PgOutbox[DicomJob] = PgOutbox(
            services.pool,
            worker=f"{me}:dicom-export",
            destination=DICOM,
            reader=dicom_reader,
            lease_s=s.dicom_lease_s,
        )
        self.sender = DicomSender(self.outbox, self.pacs, batch_size=s.dicom_batch_size, backoff=Backoff())
        conninfo = services.pool.conninfo
        self._conninfo = conninfo if isinstance(conninfo, str) else conninfo()
        self._worker = BackgroundThread("dicom-export", self._work, join_timeout_s=s.dicom_timeout_s + 5)
        self._keeper = BackgroundThread("dicom-export-keeper", self._keep, join_timeout_s=10)

    def start(self) -> None:
        self._worker.start()
        self._keeper.start()
        logger.info("DICOM export to %s, claims of %d", self.target, self.sender.batch_size)

    def stop(self) -> None:
        self._worker.stop()
        if self.http is not None:
            self.http.close()  # a request still hanging is cut; its rows come back with the lease
        self._keeper.stop()

    def _work(self) -> None:
        s = self._services.settings
        pacing = Pacing(s.dicom_poll_interval_s, self.sender.batch_size, MAX_PAUSE_S)
        run_rounds("DICOM export", self._round, pacing, self._worker.stopping, logger)

    def _round(self) -> RoundOutcome:
        done = self.sender.run_once()
        # PACS unavailable: the rows wait their backoff; the PACS is asked again a bit later.
        return RoundOutcome(done.claimed, peer_unavailable=done.pacs_unavailable)

    def _keep(self) -> None:
        keep_leases(
            "DICOM export",
            self._conninfo,
            max(0.2, self.outbox.lease_s / 3),
            self._keeper.stopping.wait,
            self.outbox.renew,
            logger,
        )

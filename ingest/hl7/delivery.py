"""Runs the ORU^R01 sender in ``serve``: one thread with its own asyncio loop holding the MLLP
connection (one per destination), and a keeper thread renewing the sender's claim leases.

Stopping lets the message in hand get its answer (a short grace), then cancels: rows not recorded
are released as they are and go out again, with the same MSH-10, after the next start.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from typing import Any, Final
from urllib.parse import urlsplit

import psycopg

from hl7_export import OruBuilder
from ingest.background import BackgroundThread
from ingest.export import store
from ingest.export.destinations import HL7
from ingest.export.keeper import keep_leases
from ingest.export.outbox.claims import PgOutbox
from ingest.hl7.connection import MllpConnection
from ingest.hl7.reader import Hl7Item, hl7_reader
from ingest.hl7.sender import Backoff, Hl7Sender
from ingest.services import Services

logger = logging.getLogger(__name__)

MAX_STORAGE_BACKOFF_S: Final = 30.0
UPKEEP_INTERVAL_S: Final = 60.0
STOP_GRACE_S: Final = 5.0


class Hl7Delivery:
    def __init__(self, services: Services, builder: OruBuilder) -> None:
        s = services.settings
        assert s.hl7_mllp_url is not None
        url = urlsplit(s.hl7_mllp_url)
        assert url.hostname is not None and url.port is not None
        self._services = services
        me = f"{socket.gethostname()}:{os.getpid()}"
        self.outbox: PgOutbox[Hl7Item] = PgOutbox(
            services.pool,
            worker=f"{me}:hl7-export",
            destination=HL7,
            reader=hl7_reader,
            lease_s=s.hl7_lease_s,
        )
        self.connection = MllpConnection(
            url.hostname,
            url.port,
            connect_timeout_s=s.hl7_connect_timeout_s,
            ack_timeout_s=s.hl7_ack_timeout_s,
        )
        self._stop = threading.Event()
        self.sender = Hl7Sender(
            self.outbox,
            services.pool,
            self.connection,
            builder,
            batch_size=s.hl7_batch_size,
            backoff=Backoff(s.hl7_retry_min_s, s.hl7_retry_max_s),
            sending_facility=s.hl7_sending_facility,
            stopping=self._stop.is_set,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        conninfo = services.pool.conninfo
        self._conninfo = conninfo if isinstance(conninfo, str) else conninfo()
        self._keeper = BackgroundThread("hl7-export-keeper", self._keep, join_timeout_s=10)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="hl7-export", daemon=True)
        self._thread.start()
        self._keeper.start()
        logger.info(
            "HL7 export to mllp://%s:%d: ORU^R01, batches of %d",
            self.connection.host, self.connection.port, self.sender.batch_size,
        )  # fmt: skip

    def stop(self) -> None:
        self._stop.set()
        loop, thread = self._loop, self._thread
        if loop is not None and self._wake is not None:
            loop.call_soon_threadsafe(self._wake.set)
        if thread is not None:
            thread.join(min(STOP_GRACE_S, self._services.settings.hl7_ack_timeout_s) + 1)
            if thread.is_alive() and loop is not None and self._task is not None:
                loop.call_soon_threadsafe(self._task.cancel)
                thread.join(10)
            if thread.is_alive():
                logger.warning("HL7 sender did not stop in time; its rows return with the lease")
        self._keeper.stop()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.current_task()
        s = self._services.settings
        failures = 0
        try:
            while not self._stop.is_set():
                try:
                    claimed, transport_failed = await self.sender.run_once()
                except psycopg.Error as exc:  # PoolTimeout included: the database is away
                    failures += 1
                    delay = min(MAX_STORAGE_BACKOFF_S, s.hl7_poll_interval_s * 2**failures)
                    logger.warning("HL7 export: storage unavailable (%s); retrying in %.0fs", exc, delay)
                    await self._sleep(delay)
                    continue
                if transport_failed:
                    failures += 1
                    await self._sleep(min(s.hl7_retry_max_s, s.hl7_retry_min_s * 2 ** min(failures, 20)))
                    continue
                failures = 0
                if claimed < s.hl7_batch_size:
                    await self._sleep(s.hl7_poll_interval_s)
        except asyncio.CancelledError:
            logger.info("HL7 sender cancelled while waiting for an ACK; the row goes out again")
        finally:
            await self.connection.close()

    async def _sleep(self, seconds: float) -> None:
        assert self._wake is not None
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            pass

    def _keep(self) -> None:
        """Renew the sender's leases on a connection of its own (a busy pool never delays it), and
        purge sent rows past ``RPM_FHIR_KEEP_SENT_DAYS`` (any destination's, as the FHIR export's
        keeper does: with HL7 alone, nobody else would)."""
        next_upkeep = time.monotonic() + UPKEEP_INTERVAL_S

        def tend(conn: psycopg.Connection[Any]) -> None:
            nonlocal next_upkeep
            self.outbox.renew(conn)
            if time.monotonic() >= next_upkeep:
                next_upkeep = time.monotonic() + UPKEEP_INTERVAL_S
                purged = store.purge_sent(conn, keep_days=self._services.settings.fhir_keep_sent_days)
                if purged:
                    logger.info("HL7 export upkeep: %d old sent outbox rows purged", purged)

        interval = max(0.2, self.outbox.lease_s / 3)
        keep_leases("HL7 export", self._conninfo, interval, self._keeper.stopping.wait, tend, logger)

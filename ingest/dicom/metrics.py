"""DICOM export metrics for /metrics: the ``dicom`` outbox rows from the database, the work from
this process's sender."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Final

import psycopg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from psycopg_pool import ConnectionPool

from ingest.dicom.sender import DicomStats

logger = logging.getLogger(__name__)

OUTCOMES: Final = ("sent", "already_stored", "parked", "deferred")
STATUSES: Final = ("pending", "sent", "failed")
_ROWS: Final = "SELECT status, count(*) FROM outbox WHERE destination = 'dicom' GROUP BY status"


class DicomCollector:
    """``rpm_dicom_outbox_rows{status}`` (every process's rows, read at scrape time) and
    ``rpm_dicom_export_rows_total{outcome}`` (what this process's sender did)."""

    def __init__(self, pool: ConnectionPool, stats: DicomStats, *, timeout_s: float = 2.0) -> None:
        self._pool = pool
        self._stats = stats
        self._timeout_s = timeout_s

    def describe(self) -> Iterator[Metric]:
        yield from self._families(None)

    def collect(self) -> Iterator[Metric]:
        counts: dict[str, int] | None = None
        try:
            with self._pool.connection(timeout=self._timeout_s) as conn, conn.transaction():
                conn.execute("SET LOCAL statement_timeout = 2000")
                counts = dict(conn.execute(_ROWS).fetchall())
        except psycopg.Error as exc:  # a scrape never fails on the database: the gauge is left out
            logger.debug("dicom outbox state unavailable for /metrics: %s", exc)
        yield from self._families(counts)

    def _families(self, counts: dict[str, int] | None) -> Iterator[Metric]:
        rows = GaugeMetricFamily(
            "rpm_dicom_outbox_rows",
            "DICOM export outbox rows by status (pending, sent, failed)",
            labels=["status"],
        )
        if counts is not None:
            for status in sorted(set(STATUSES) | set(counts)):
                rows.add_metric([status], counts.get(status, 0))
        yield rows
        done = CounterMetricFamily(
            "rpm_dicom_export_rows",
            "DICOM export work of this process: rows stored (already stored among them), parked, deferred",
            labels=["outcome"],
        )
        for outcome in OUTCOMES:
            done.add_metric([outcome], getattr(self._stats, outcome))
        yield done

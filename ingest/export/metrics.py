"""FHIR export metrics for /metrics: the queue from the database, the work from this process."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence

import psycopg
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from psycopg_pool import ConnectionPool

from fhir_export.worker import ExportStats
from ingest.export import store

logger = logging.getLogger(__name__)

OUTCOMES = ("sent", "created", "already_present", "parked", "deferred", "bundles")


class ExportCollector:
    """A Prometheus collector: outbox rows per status and this process's delivery counters.

    ``rpm_fhir_outbox_rows{status}`` counts the whole outbox (every process), read at scrape time;
    ``rpm_fhir_export_rows_total{outcome}`` counts what this process's workers did.
    """

    def __init__(
        self,
        pool: ConnectionPool,
        stats: Callable[[], Sequence[ExportStats]],
        errors: Callable[[], int],
        *,
        timeout_s: float = 2.0,
    ) -> None:
        self._pool = pool
        self._stats = stats
        self._errors = errors
        self._timeout_s = timeout_s

    def describe(self) -> Iterator[Metric]:
        yield from self._families(None, None)

    def collect(self) -> Iterator[Metric]:
        counts: dict[str, int] | None = None
        age: float | None = None
        try:
            with self._pool.connection(timeout=self._timeout_s) as conn, conn.transaction():
                conn.execute("SET LOCAL statement_timeout = 2000")
                counts, age = store.queue_state(conn)
        except psycopg.Error as exc:  # a scrape never fails on the database: the gauges are left out
            logger.debug("outbox state unavailable for /metrics: %s", exc)
        yield from self._families(counts, age)

    def _families(self, counts: dict[str, int] | None, age: float | None) -> Iterator[Metric]:
        rows = GaugeMetricFamily(
            "rpm_fhir_outbox_rows",
            "FHIR export outbox rows by status (pending, waiting for a FHIR Patient id, sent, failed)",
            labels=["status"],
        )
        oldest = GaugeMetricFamily(
            "rpm_fhir_outbox_oldest_due_seconds", "Age of the oldest pending row that is due (0: none)"
        )
        if counts is not None:
            for status, n in counts.items():
                rows.add_metric([status], n)
            oldest.add_metric([], max(0.0, age or 0.0))
        yield rows
        yield oldest
        done = CounterMetricFamily(
            "rpm_fhir_export_rows",
            "Export work of this process: rows sent (created or already present), parked, deferred;"
            " transaction bundles posted",
            labels=["outcome"],
        )
        all_stats = list(self._stats())
        for outcome in OUTCOMES:
            done.add_metric([outcome], sum(getattr(s, outcome) for s in all_stats))
        yield done
        yield CounterMetricFamily(
            "rpm_fhir_export_worker_errors",
            "Unexpected errors in export workers (storage trouble included); the worker retries",
            value=self._errors(),
        )

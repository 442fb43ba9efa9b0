"""Prometheus metrics, held in a registry built by the composition root (no global state)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from ingest.pipeline import Outcome


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.readings_stored = Counter(
            "rpm_readings_stored", "Readings newly stored", ["source"], registry=r
        )
        self.readings_duplicate = Counter(
            "rpm_readings_duplicate", "Readings received again and absorbed", ["source"], registry=r
        )
        self.readings_rejected = Counter(
            "rpm_readings_rejected", "Readings refused and dead-lettered", ["source"], registry=r
        )
        self.messages_dead_lettered = Counter(
            "rpm_messages_dead_lettered",
            "Whole messages refused (malformed, oversized...) and dead-lettered",
            ["source"],
            registry=r,
        )
        self.dead_letters_suppressed = Counter(
            "rpm_dead_letters_suppressed",
            "Dead letters over their key's limit per window, counted into a summary row instead"
            " of kept in full (also counted in rpm_readings_rejected / rpm_messages_dead_lettered)",
            ["source"],
            registry=r,
        )
        self.dead_letter_rows = Gauge(
            "rpm_dead_letter_rows", "Rows in the dead-letter table (set by the retention job)",
            registry=r,
        )
        self.dead_letters_deleted = Counter(
            "rpm_dead_letters_deleted",
            "Dead-letter rows deleted by the retention job (reason: retention, cap)",
            ["reason"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "rpm_ingest_batch_seconds",
            "Time to store one batch, transaction included",
            ["source"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.batch_size = Histogram(
            "rpm_ingest_batch_messages",
            "Messages per stored batch",
            ["source"],
            buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000),
            registry=r,
        )
        self.storage_errors = Counter(
            "rpm_storage_errors", "Batches that failed on a storage error and were retried",
            ["source"], registry=r,
        )
        self.mqtt_connected = Gauge(
            "rpm_mqtt_connected", "1 while the MQTT consumer is connected", registry=r
        )
        self.mqtt_inflight = Gauge(
            "rpm_mqtt_inflight_messages", "MQTT messages received but not yet acknowledged",
            registry=r,
        )
        self.mqtt_received = Counter(
            "rpm_mqtt_messages_received", "MQTT messages handed to the consumer", registry=r
        )
        self.mqtt_acked = Counter(
            "rpm_mqtt_messages_acked", "MQTT messages acknowledged after their commit", registry=r
        )
        self.mqtt_ack_skipped = Counter(
            "rpm_mqtt_acks_skipped",
            "Committed MQTT messages not acknowledged because their connection was lost"
            " (the broker redelivers them and the store absorbs the repeat)",
            registry=r,
        )
        self.mqtt_connects = Counter("rpm_mqtt_connects", "MQTT connections established", registry=r)
        self.mqtt_sessions_lost = Counter(
            "rpm_mqtt_sessions_lost", "Reconnects where the broker had no session left for us",
            registry=r,
        )
        self.mqtt_isolated = Counter(
            "rpm_mqtt_messages_isolated",
            "MQTT messages the store refused on their own, dead-lettered",
            registry=r,
        )
        # --- alerts (counted once each, by the process that wrote the event, after commit)
        self.alerts_opened = Counter(
            "rpm_alerts_opened", "Alerts opened", ["kind", "severity"], registry=r
        )
        self.alert_events = Counter(
            "rpm_alert_events", "Alert changes (opened, severity_raised, escalated, acknowledged,"
            " resolved)", ["type", "kind", "severity"], registry=r,
        )
        self.alert_evaluation_seconds = Histogram(
            "rpm_alert_evaluation_seconds", "Alert rule evaluation per ingest batch (in the transaction)",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=r,
        )
        self.alert_stream_clients = Gauge(
            "rpm_alert_stream_clients", "Open alert stream (SSE) connections", registry=r
        )
        self.webhook_deliveries = Counter(
            "rpm_webhook_delivery_attempts", "Webhook delivery attempts by outcome"
            " (delivered, retry, failed)", ["outcome"], registry=r,
        )

    def observe(self, source: str, outcomes: Sequence[Outcome], seconds: float) -> None:
        """Count a committed batch (call after commit, never before)."""
        stored = sum(o.accepted for o in outcomes)
        duplicate = sum(o.duplicates for o in outcomes)
        rejected = sum(len(o.rejected) for o in outcomes)
        failed = sum(1 for o in outcomes if o.error is not None)
        if stored:
            self.readings_stored.labels(source).inc(stored)
        if duplicate:
            self.readings_duplicate.labels(source).inc(duplicate)
        if rejected:
            self.readings_rejected.labels(source).inc(rejected)
        if failed:
            self.messages_dead_lettered.labels(source).inc(failed)
        self.batch_seconds.labels(source).observe(seconds)
        self.batch_size.labels(source).observe(len(outcomes))

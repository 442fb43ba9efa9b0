"""HL7 metrics for /metrics: what this process's sender and ADT listener did.

``rpm_hl7_messages_total{outcome}``: ORU^R01 outcomes (sent, retried, rejected, held behind an
older message of the patient, transport failures); ``rpm_hl7_adt_answers_total{code}``: the ACK
codes the listener answered (AA, AE, AR). The outbox rows themselves (any destination) are counted
by the export's collector.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Final

from prometheus_client.core import CounterMetricFamily, Metric

from ingest.hl7.sender import SenderStats

SENDER_OUTCOMES: Final = ("sent", "retried", "rejected", "held", "transport_failures")
ADT_CODES: Final = ("AA", "AE", "AR")


class Hl7Collector:
    def __init__(
        self, sender: Callable[[], SenderStats | None], adt: Callable[[], Mapping[str, int] | None]
    ) -> None:
        self._sender = sender
        self._adt = adt

    def describe(self) -> Iterator[Metric]:
        yield from self.collect()

    def collect(self) -> Iterator[Metric]:
        messages = CounterMetricFamily(
            "rpm_hl7_messages", "ORU^R01 messages of this process's sender by outcome", labels=["outcome"]
        )
        stats = self._sender()
        for outcome in SENDER_OUTCOMES:
            messages.add_metric([outcome], 0 if stats is None else getattr(stats, outcome))
        yield messages
        answers = CounterMetricFamily(
            "rpm_hl7_adt_answers", "ACKs this process's ADT listener answered, by code", labels=["code"]
        )
        counts = self._adt() or {}
        for code in ADT_CODES:
            answers.add_metric([code], counts.get(code, 0))
        yield answers

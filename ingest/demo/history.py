"""Thirty days of past readings for the demo patients, generated and ingested through the pipeline.

The same code path as any device (parse, validate, attribute, store idempotently, alert hooks,
export outbox), in time order so the alert rules see each patient's history as it happened.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any

from devices.ecg import METRIC as ECG
from ingest.demo.clinic import HISTORY_DAYS, DemoDevice, DemoPatient
from ingest.demo.curves import UNITS, Physiology, noise
from ingest.demo.ecg import ecg_reading
from ingest.pipeline import Envelope
from ingest.services import Services

logger = logging.getLogger(__name__)

SOURCE = "demo"
BATCH = 200


@dataclass(frozen=True, slots=True)
class Measurement:
    device_id: str
    measured_at: datetime
    payload: dict[str, Any]


def measurement(device: DemoDevice, body: Physiology, at: datetime, source: str = SOURCE) -> Measurement:
    """One measurement of every metric the device reports, as the MQTT payload of ``mqtt.md``."""
    at = at.replace(microsecond=0)
    stamp = at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    readings = [
        ecg_reading(device.id, body, at, stamp, source)
        if m == ECG
        else {
            "metric": m, "value": body.value(m, at), "unit": UNITS[m], "measured_at": stamp, "source": source,
        }
        for m in device.metrics
    ]
    return Measurement(device.id, at, {"readings": readings})


def _kept(patient: DemoPatient, day: datetime) -> bool:
    """Whether the patient measured on ``day`` (deterministic, by adherence)."""
    if patient.adherence >= 1.0:
        return True
    digest = hashlib.blake2b(f"{patient.mrn}|{day.date()}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") / 2**32 < patient.adherence


def schedule(
    patient: DemoPatient, zone: tzinfo, now: datetime, demo_start: datetime, days: int = HISTORY_DAYS
) -> Iterator[Measurement]:
    """Every past measurement of the patient in the last ``days`` days, before ``now``."""
    body = patient.physiology(zone, now, demo_start)
    first = now - timedelta(days=days)
    last = now - timedelta(hours=patient.silent_hours)
    today = now.astimezone(zone).date()
    for back in range(days, -1, -1):
        day = datetime.combine(today - timedelta(days=back), time(0), tzinfo=zone)
        if not _kept(patient, day):
            continue
        for device in patient.devices:
            for hour in device.hours:
                jitter = 12.0 * noise(device.id, "jitter", day + timedelta(hours=hour))
                at = day + timedelta(hours=hour, minutes=max(-40.0, min(40.0, jitter)))
                if first <= at < last:
                    yield measurement(device, body, at)


def envelopes(measurements: Sequence[Measurement], received_at: datetime) -> list[Envelope]:
    return [
        Envelope(
            source=SOURCE,
            raw=json.dumps(m.payload, separators=(",", ":")).encode(),
            received_at=received_at,
            device_id=m.device_id,
            decoded=m.payload,
        )
        for m in measurements
    ]


def backfill(
    services: Services,
    patients: Sequence[DemoPatient],
    zone: tzinfo,
    now: datetime,
    demo_start: datetime,
    days: int = HISTORY_DAYS,
) -> tuple[int, int]:
    """Ingest the patients' history oldest first; returns (new readings, already stored)."""
    todo = sorted(
        (m for p in patients for m in schedule(p, zone, now, demo_start, days)),
        key=lambda m: (m.measured_at, m.device_id),
    )
    accepted = duplicates = 0
    for start in range(0, len(todo), BATCH):
        outcomes = services.ingest(SOURCE, envelopes(todo[start : start + BATCH], now))
        for outcome in outcomes:
            accepted += outcome.accepted
            duplicates += outcome.duplicates
            if outcome.error or outcome.rejected:
                reason = outcome.error or outcome.rejected[0].reason
                logger.warning("demo history message refused: %s", reason)
    logger.info("demo history: %d readings stored, %d already there", accepted, duplicates)
    return accepted, duplicates

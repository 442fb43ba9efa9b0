"""SQL for ECG strips: idempotent insert with attribution, load one by id, list a patient's.

A strip is attributed like any reading: to the patient of the device's newest assignment at or
before ``measured_at``; its clinic is that patient's clinic. The samples are one bytea
(``devices.ecg.encode_samples``): a list never reads them, a fetch reads them whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import psycopg

from devices.ecg import EcgStrip, decode_samples, encode_samples
from ingest.db.rows import fetch_all, fetch_one
from ingest.store.readings import InsertStatus

_INSERT: Final = """
WITH known AS (
    SELECT 1 FROM devices WHERE id = %(device_id)s
), assigned AS (
    SELECT a.patient_id FROM device_assignments a
    WHERE a.device_id = %(device_id)s AND a.since <= %(measured_at)s
    ORDER BY a.since DESC LIMIT 1
), inserted AS (
    INSERT INTO ecg_strips (id, clinic_id, patient_id, device_id, measured_at, sample_rate_hz,
                            leads, sample_count, samples, interpretation, source, gateway_id,
                            received_at)
    SELECT %(id)s, p.clinic_id, p.id, %(device_id)s, %(measured_at)s, %(rate)s, %(leads)s,
           %(count)s, %(samples)s, %(interpretation)s, %(source)s, %(gateway_id)s,
           %(received_at)s
    FROM assigned JOIN patients p ON p.id = assigned.patient_id
    WHERE EXISTS (SELECT 1 FROM known)
    ON CONFLICT DO NOTHING
    RETURNING clinic_id, patient_id
)
SELECT EXISTS (SELECT 1 FROM known) AS known,
       (SELECT patient_id FROM assigned) AS assigned,
       (SELECT patient_id FROM inserted) AS patient_id,
       (SELECT clinic_id FROM inserted) AS clinic_id
"""

_SUMMARY_COLUMNS: Final = (
    "id, clinic_id, patient_id, device_id, measured_at, sample_rate_hz, leads, sample_count,"
    " interpretation, received_at"
)
_LOAD: Final = f"SELECT {_SUMMARY_COLUMNS}, samples, source, gateway_id FROM ecg_strips WHERE id = %s"
_LIST: Final = f"""
SELECT {_SUMMARY_COLUMNS} FROM ecg_strips
WHERE patient_id = %(patient_id)s
  AND (%(since)s::timestamptz IS NULL OR measured_at >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR measured_at < %(until)s)
ORDER BY measured_at DESC
LIMIT %(limit)s
"""


@dataclass(frozen=True, slots=True)
class StripInsert:
    """What became of one strip: stored (with its patient and clinic), a duplicate, or refused
    because its device is unknown or was assigned to nobody at ``measured_at``."""

    status: InsertStatus
    patient_id: UUID | None = None
    clinic_id: str | None = None


@dataclass(frozen=True, slots=True)
class StripSummary:
    """A strip without its samples (the list route, the dashboard's list)."""

    id: UUID
    clinic_id: str
    patient_id: UUID
    device_id: str
    measured_at: datetime
    sample_rate_hz: float
    leads: tuple[str, ...]
    sample_count: int
    interpretation: str | None
    received_at: datetime

    @property
    def duration_s(self) -> float:
        return self.sample_count / self.sample_rate_hz


@dataclass(frozen=True, slots=True)
class StoredStrip:
    """A stored strip: its row's attribution and the strip itself, samples decoded."""

    id: UUID
    clinic_id: str
    patient_id: UUID
    received_at: datetime
    strip: EcgStrip


def insert_strip(conn: psycopg.Connection[Any], strip: EcgStrip, *, received_at: datetime) -> StripInsert:
    """Store ``strip`` unless its identity is already stored; in the caller's transaction."""
    row = fetch_one(
        conn,
        _INSERT,
        {
            "id": strip.id,
            "device_id": strip.device_id,
            "measured_at": strip.measured_at,
            "rate": strip.sample_rate_hz,
            "leads": list(strip.lead_names),
            "count": strip.sample_count,
            "samples": encode_samples(strip),
            "interpretation": strip.interpretation,
            "source": strip.source,
            "gateway_id": strip.gateway_id,
            "received_at": received_at,
        },
    )
    assert row is not None
    if row["patient_id"] is not None:
        return StripInsert(InsertStatus.INSERTED, row["patient_id"], row["clinic_id"])
    if not row["known"]:
        return StripInsert(InsertStatus.UNKNOWN_DEVICE)
    if row["assigned"] is None:
        return StripInsert(InsertStatus.UNASSIGNED)
    return StripInsert(InsertStatus.DUPLICATE)


def load_strip(conn: psycopg.Connection[Any], strip_id: UUID | str) -> StoredStrip | None:
    """One stored strip with its samples, or None when there is no strip with that id."""
    row = fetch_one(conn, _LOAD, (str(strip_id),))
    if row is None:
        return None
    leads = tuple(row["leads"])
    strip = EcgStrip(
        row["device_id"],
        row["measured_at"],
        row["sample_rate_hz"],
        decode_samples(bytes(row["samples"]), leads, row["sample_count"]),
        row["interpretation"],
        row["source"],
        row["gateway_id"],
    )
    return StoredStrip(row["id"], row["clinic_id"], row["patient_id"], row["received_at"], strip)


def list_strips(
    conn: psycopg.Connection[Any],
    patient_id: UUID,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 1000,
) -> list[StripSummary]:
    """A patient's strips in ``[since, until)``, newest first, without their samples."""
    rows = fetch_all(conn, _LIST, {"patient_id": patient_id, "since": since, "until": until, "limit": limit})
    return [_summary(row) for row in rows]


def _summary(row: dict[str, Any]) -> StripSummary:
    return StripSummary(
        row["id"],
        row["clinic_id"],
        row["patient_id"],
        row["device_id"],
        row["measured_at"],
        row["sample_rate_hz"],
        tuple(row["leads"]),
        row["sample_count"],
        row["interpretation"],
        row["received_at"],
    )


def strip_for_export(conn: psycopg.Connection[Any], item_ref: str | None) -> EcgStrip:
    """The strip an outbox row names (``item_ref``), for a destination's reader.

    Raises ``ValueError`` for a row that names no strip or not a strip id, ``KeyError`` when the
    strip is gone: the outbox parks such a row with the reason."""
    if item_ref is None:
        raise ValueError("the outbox row names no ECG strip (item_ref is empty)")
    try:
        strip_id = UUID(item_ref)
    except ValueError:
        raise ValueError(f"item_ref {item_ref[:64]!r} is not an ECG strip id") from None
    stored = load_strip(conn, strip_id)
    if stored is None:
        raise KeyError(f"ECG strip {strip_id} is not stored")
    return stored.strip

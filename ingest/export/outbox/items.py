"""Outbox rows for items kept in tables of their own (an ECG strip, an alert as a FHIR Flag).

Such a row keeps no copy of its item: ``item_ref`` names it, and the destination's reader loads it
when a worker claims the row. :func:`enqueue_items` runs in the caller's transaction (the ingest
transaction that stores a strip, the one that opens an alert), so an item and its rows commit
together. One row per destination, kind and item: enqueuing the same item again is a no-op.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from ingest.export.destinations import WAITS_FOR_LINK
from ingest.export.outbox.rows import WAITING_REASON

ITEM_KINDS: Final = frozenset({"ecg", "flag"})

_INSERT: Final = """
INSERT INTO outbox (clinic_id, patient_id, device_id, destination, kind, export_key, item_ref,
                    measured_at, status, last_error, next_attempt_at)
SELECT p.clinic_id, p.id, r.device_id, r.destination, r.kind, r.export_key, r.item_ref,
       r.measured_at,
       CASE WHEN r.waits AND p.fhir_patient_id IS NULL THEN 'waiting' ELSE 'pending' END,
       CASE WHEN r.waits AND p.fhir_patient_id IS NULL THEN %(reason)s END,
       now() + make_interval(secs => r.delay_s)
FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(
    patient_id uuid, device_id text, destination text, kind text, export_key text, item_ref text,
    measured_at timestamptz, waits boolean, delay_s float8)
JOIN patients p ON p.id = r.patient_id
ORDER BY p.id
ON CONFLICT (destination, kind, item_ref) WHERE item_ref IS NOT NULL DO NOTHING
"""


@dataclass(frozen=True, slots=True)
class NewItem:
    """One row to write: ``item`` (an ECG strip's id, an alert's id) for ``destination``.

    ``delay_s`` holds the row back (e.g. a Flag waiting for its Observations to go first).
    """

    patient_id: UUID
    device_id: str
    destination: str
    kind: str
    item_ref: str
    measured_at: datetime
    export_key: str | None = None
    delay_s: float = 0.0

    def as_json(self) -> dict[str, Any]:
        if self.kind not in ITEM_KINDS:
            raise ValueError(f"outbox item kind must be one of {sorted(ITEM_KINDS)}, not {self.kind!r}")
        return {
            "patient_id": str(self.patient_id),
            "device_id": self.device_id,
            "destination": self.destination,
            "kind": self.kind,
            "export_key": self.export_key or self.kind,
            "item_ref": self.item_ref,
            "measured_at": self.measured_at.isoformat(),
            "waits": self.destination in WAITS_FOR_LINK,
            "delay_s": max(0.0, self.delay_s),
        }


def enqueue_items(conn: psycopg.Connection[Any], items: Sequence[NewItem]) -> int:
    """Write a row per item (those already there are left alone); return how many were written.

    Rows for destinations that wait for the EHR link start 'waiting' while the patient has no FHIR
    Patient id, and are released with the patient's other rows when it is linked.
    """
    if not items:
        return 0
    rows = Jsonb([item.as_json() for item in items])
    return conn.execute(_INSERT, {"rows": rows, "reason": WAITING_REASON}).rowcount

"""The pipeline hook that writes outbox rows inside the ingest transaction.

One row per new reading and destination, or one per blood-pressure panel and destination (what
makes a panel, and when it is complete, is :mod:`fhir_export.panels`). A component that arrives
in a later batch joins its panel's row while that row has not gone out; once the panel is at the
destination (or on its way), conditional create cannot add to it, so the late component gets a
``failed`` row of its own that says so. A panel still missing systolic or diastolic waits
``panel_wait_s`` for the rest before it goes out incomplete.

Single readings never travel back to Python: one statement copies them from the batch's new rows
into the outbox's typed columns, a row per destination.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import psycopg
from psycopg.types.json import Jsonb

from fhir_export.panels import (
    LATE_KIND,
    PANEL_KEY,
    PANEL_KIND,
    READING_KIND,
    REQUIRED,
    Grouping,
    PanelKey,
    group_panels,
    is_complete,
    late_components,
    late_key,
)
from fhir_export.table import MappingTable
from ingest.export.destinations import FHIR, WAITS_FOR_LINK
from ingest.export.outbox.rows import LATE_REASON, WAITING_REASON, reading_json
from ingest.pipeline import StoredReading
from ingest.store.readings import NEW_READINGS

logger = logging.getLogger(__name__)

_LOCK_PATIENTS: Final = (
    # FOR SHARE: linking a patient (UPDATE patients) waits for this transaction and vice versa,
    # so rows are never written 'waiting' just after the patient's release ran.
    "SELECT id, clinic_id, fhir_patient_id FROM patients WHERE id = ANY(%s) ORDER BY id FOR SHARE"
)
_ROWS: Final = """
FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(
    clinic_id text, patient_id uuid, device_id text, export_key text, kind text,
    measured_at timestamptz, readings jsonb, status text, last_error text, delay_s float8,
    destination text)
"""
_INSERT: Final = """
INSERT INTO outbox (clinic_id, patient_id, device_id, export_key, kind, measured_at, readings,
                    status, last_error, next_attempt_at, destination)
SELECT r.clinic_id, r.patient_id, r.device_id, r.export_key, r.kind, r.measured_at, r.readings,
       r.status, r.last_error, now() + make_interval(secs => r.delay_s), r.destination
"""
# Single readings go in straight from the batch's new rows, into typed columns (no conflict is
# possible for them: see the migrations).
_INSERT_SINGLES: Final = f"""
WITH locked AS MATERIALIZED (  -- as _LOCK_PATIENTS
    SELECT id, clinic_id, fhir_patient_id FROM patients
    WHERE id IN (SELECT patient_id FROM {NEW_READINGS}) ORDER BY id FOR SHARE
)
INSERT INTO outbox (clinic_id, patient_id, device_id, export_key, kind, measured_at, status,
                    last_error, value, unit, original_value, original_unit, reading_status,
                    source, gateway_id, device_time, destination)
SELECT p.clinic_id, n.patient_id, n.device_id, n.metric, '{READING_KIND}', n.measured_at,
       CASE WHEN p.fhir_patient_id IS NULL AND d.waits THEN 'waiting' ELSE 'pending' END,
       CASE WHEN p.fhir_patient_id IS NULL AND d.waits THEN %(reason)s END,
       n.value, n.unit, n.original_value, n.original_unit, coalesce(n.status, '{{}}'), n.source,
       n.gateway_id, n.device_time, d.name
FROM {NEW_READINGS} n JOIN locked p ON p.id = n.patient_id
CROSS JOIN unnest(%(destinations)s::text[], %(waits)s::boolean[]) WITH ORDINALITY AS d(name, waits, ord)
WHERE n.metric = ANY(%(metrics)s)
ORDER BY n.idx, d.ord  -- ids in the batch's order: a destination that keeps order per patient sends in it
"""

_PANEL_CONFLICT: Final = (
    f"ON CONFLICT (destination, device_id, export_key, measured_at)"
    f" WHERE kind <> '{READING_KIND}' AND item_ref IS NULL"
)
_INSERT_LATE: Final = _INSERT + _ROWS + _PANEL_CONFLICT + " DO NOTHING"
# A panel that has become complete is due at once (it may have been waiting for the rest).
_UPSERT_PANELS: Final = (
    _INSERT
    + _ROWS
    + _PANEL_CONFLICT
    + """ DO UPDATE
SET readings = outbox.readings || EXCLUDED.readings,
    next_attempt_at = CASE
        WHEN (outbox.readings || EXCLUDED.readings) ?& %(required)s::text[]
        THEN least(outbox.next_attempt_at, now())
        ELSE outbox.next_attempt_at END,
    updated_at = now()
WHERE outbox.status <> 'sent'
  AND (outbox.claimed_until IS NULL OR outbox.claimed_until < now())
RETURNING destination, device_id, measured_at
"""
)
_EXISTING_PANELS: Final = f"""
SELECT o.destination, o.device_id, o.measured_at, o.readings
FROM outbox o
JOIN jsonb_to_recordset(%s::jsonb) AS k(destination text, device_id text, measured_at timestamptz)
  ON o.destination = k.destination AND o.device_id = k.device_id AND o.measured_at = k.measured_at
WHERE o.export_key = '{PANEL_KEY}' AND o.kind <> '{READING_KIND}' AND o.item_ref IS NULL
"""


@dataclass(slots=True)
class _Row:
    clinic_id: str
    patient_id: str
    device_id: str
    export_key: str
    kind: str
    measured_at: datetime
    readings: dict[str, Any]
    status: str
    last_error: str | None
    destination: str
    delay_s: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "clinic_id": self.clinic_id,
            "patient_id": self.patient_id,
            "device_id": self.device_id,
            "export_key": self.export_key,
            "kind": self.kind,
            "measured_at": self.measured_at.isoformat(),
            "readings": self.readings,
            "status": self.status,
            "last_error": self.last_error,
            "delay_s": self.delay_s,
            "destination": self.destination,
        }


class OutboxWriter:
    """The ``NewReadingsHook`` that writes outbox rows in the ingest transaction: one row per
    reading (or panel) and destination."""

    def __init__(
        self, table: MappingTable, *, destinations: Sequence[str] = (FHIR,), panel_wait_s: float = 30.0
    ) -> None:
        if not destinations or len(set(destinations)) != len(destinations):
            raise ValueError("destinations must be distinct and at least one")
        self._panel_wait_s = panel_wait_s
        self._grouping = Grouping.of(table)
        self._single_metrics = sorted(self._grouping.single_metrics)
        self.destinations: tuple[str, ...] = tuple(destinations)
        self._waits = [d in WAITS_FOR_LINK for d in self.destinations]

    def __call__(self, conn: psycopg.Connection[Any], readings: Sequence[StoredReading]) -> None:
        singles, members = self._grouping.single_metrics, self._grouping.panel_metrics
        panel_parts = [s for s in readings if s.reading.metric in members]
        with conn.cursor() as cur:
            if any(s.reading.metric in singles for s in readings):
                # Single readings: copied from the batch's new rows in SQL (they never travel back
                # here), after locking their patients.
                params = {
                    "metrics": self._single_metrics,
                    "reason": WAITING_REASON,
                    "destinations": list(self.destinations),
                    "waits": self._waits,
                }
                cur.execute(_INSERT_SINGLES, params)
            if panel_parts:
                self._panels(cur, panel_parts)

    def _panels(self, cur: psycopg.Cursor[Any], parts: Sequence[StoredReading]) -> None:
        """Panel components join their panel's row (or make it); late ones get a failed row."""
        linked: dict[str, tuple[str, str | None]] = {
            str(pid): (clinic, fhir_id)
            for pid, clinic, fhir_id in cur.execute(
                _LOCK_PATIENTS, (list({s.patient_id for s in parts}),)
            ).fetchall()
        }
        panels: dict[tuple[str, PanelKey], _Row] = {}
        for key, members in group_panels(parts, lambda s: s.reading).items():
            patient = str(members[0].patient_id)
            clinic, fhir_id = linked[patient]
            readings = {s.reading.metric: reading_json(s.reading) for s in members}
            delay_s = 0.0 if is_complete(readings) else self._panel_wait_s
            for destination, waits in zip(self.destinations, self._waits, strict=True):
                status, reason = ("waiting", WAITING_REASON) if waits and not fhir_id else ("pending", None)
                panels[destination, key] = _Row(
                    clinic, patient, key.device_id, PANEL_KEY, PANEL_KIND, key.measured_at,
                    readings, status, reason, destination, delay_s,
                )  # fmt: skip
        rows = Jsonb([p.as_json() for p in panels.values()])
        cur.execute(_UPSERT_PANELS, {"rows": rows, "required": list(REQUIRED)})
        written = {(dest, PanelKey(d, m)) for dest, d, m in cur.fetchall()}
        late = [p for key, p in panels.items() if key not in written]
        if late:
            self._late_components(cur, late)

    @staticmethod
    def _late_components(cur: psycopg.Cursor[Any], panels: list[_Row]) -> None:
        """Components whose panel went out already: a failed row each, saying why."""
        keys = [
            {"destination": p.destination, "device_id": p.device_id, "measured_at": p.measured_at.isoformat()}
            for p in panels
        ]
        cur.execute(_EXISTING_PANELS, (Jsonb(keys),))
        existing = {(dest, PanelKey(d, m)): set(r) for dest, d, m, r in cur.fetchall()}
        rows: list[_Row] = []
        for panel in panels:
            sent = existing.get((panel.destination, PanelKey(panel.device_id, panel.measured_at)), set())
            for metric in late_components(panel.readings, sent):
                rows.append(
                    _Row(panel.clinic_id, panel.patient_id, panel.device_id, late_key(metric),
                         LATE_KIND, panel.measured_at, {metric: panel.readings[metric]}, "failed",
                         LATE_REASON, panel.destination)
                )  # fmt: skip
        if rows:
            logger.warning("%d blood-pressure components arrived after their panel was sent", len(rows))
            cur.execute(_INSERT_LATE, {"rows": Jsonb([r.as_json() for r in rows])})

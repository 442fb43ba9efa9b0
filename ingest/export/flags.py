"""Alerts to the EHR as FHIR Flags: the outbox rows, written in the alert's own transaction.

The alert engine, its scheduler and the human steps (acknowledge, resolve) all record their
changes through ``ingest.alerts.events.write_events``; this module's :func:`queue_flags` is
handed to them as an event sink and runs in that same transaction, so an alert and its Flag row
commit together, or neither does.

- ``opened``: one row (kind ``flag``, ``item_ref`` the alert id, destination ``fhir``) via
  ``enqueue_items``: 'waiting' while the patient is not linked, like its Observations.
- ``resolved``: the same row is queued again (``export_key`` ``flag:resolved``): whatever it was
  (sent, failed, pending, in a worker's hands), it becomes due now, and a worker sending the
  active Flag meanwhile loses its claim (its "sent" is not recorded), so the inactive Flag goes
  after it. The row exports the alert as it is when claimed: one resolved Flag, once.
Other events (acknowledged, escalated, severity raised...) leave the Flag active as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import psycopg

from ingest.alerts.events import PendingEvent
from ingest.export.destinations import FHIR
from ingest.export.outbox.items import NewItem, enqueue_items

KIND: Final = "flag"
RESOLVED_KEY: Final = "flag:resolved"

# A Flag row needs a device (the outbox's rows all name one): the alert's, else the device the
# patient has now. An alert of a patient without any device (never measured) has no row.
_DEVICE: Final = """
SELECT device_id FROM device_assignments WHERE patient_id = %s ORDER BY since DESC LIMIT 1
"""
_REQUEUE: Final = """
UPDATE outbox SET export_key = %(key)s, attempts = 0, last_error = NULL, next_attempt_at = now(),
    status = CASE WHEN status = 'waiting' THEN 'waiting' ELSE 'pending' END,
    claim_token = NULL, claimed_by = NULL, claimed_until = NULL, updated_at = now()
WHERE destination = %(destination)s AND kind = %(kind)s AND item_ref = ANY(%(refs)s)
"""


def queue_flags(conn: psycopg.Connection[Any], events: Sequence[PendingEvent]) -> None:
    """The alert event sink: a Flag row per opened alert, queued again once it is resolved."""
    new: list[NewItem] = []
    resolved: list[str] = []
    for event in events:
        if event.type not in ("opened", "resolved"):
            continue
        alert = event.alert
        device = alert.get("device_id") or _patient_device(conn, alert["patient_id"])
        if device is None:
            continue
        new.append(
            NewItem(
                patient_id=alert["patient_id"],
                device_id=device,
                destination=FHIR,
                kind=KIND,
                item_ref=str(alert["id"]),
                measured_at=alert["onset_at"],
            )
        )
        if event.type == "resolved":
            resolved.append(str(alert["id"]))
    if new:
        enqueue_items(conn, new)  # an alert resolved at once gets its row here, then re-queued
    if resolved:
        conn.execute(_REQUEUE, {"key": RESOLVED_KEY, "destination": FHIR, "kind": KIND, "refs": resolved})


def _patient_device(conn: psycopg.Connection[Any], patient_id: Any) -> str | None:
    row = conn.execute(_DEVICE, (patient_id,)).fetchone()
    return None if row is None or row[0] is None else str(row[0])

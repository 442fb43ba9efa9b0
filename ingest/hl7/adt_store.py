"""SQL for inbound ADT: the received-message log, registering and updating patients, ending
monitoring (A03) and merging two patients (A40). Every function runs in the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from hl7_export import MessageError
from ingest.billing.episodes import end_monitoring as end_billing_episode
from ingest.billing.episodes import merge_patients as merge_billing

# A patient's rows in these tables follow them when they are merged into another patient.
_MOVED_PLAIN: Final = ("readings", "device_assignments", "outbox", "alert_events")
# Tables of other features, moved too when this database has them.
_MOVED_IF_PRESENT: Final = ("ecg_strips", "clinician_time")


def claim_control_id(
    conn: psycopg.Connection[Any], sender: tuple[str, str], control_id: str, event: str, clinic_id: str
) -> bool:
    """Record the message as applied; False when it was applied before (a re-send). A concurrent
    copy waits here for the first one's transaction and then sees it."""
    row = conn.execute(
        "INSERT INTO hl7_received (sending_application, sending_facility, control_id, event, clinic_id,"
        " ack_code) VALUES (%s, %s, %s, %s, %s, 'AA') ON CONFLICT DO NOTHING RETURNING 1",
        (sender[0][:227], sender[1][:227], control_id, event, clinic_id),
    ).fetchone()
    return row is not None


def forget_received(conn: psycopg.Connection[Any], keep_days: int) -> int:
    """Drop the log of messages applied more than ``keep_days`` ago (a sender re-sends within
    minutes, not months)."""
    return conn.execute(
        "DELETE FROM hl7_received WHERE received_at < now() - make_interval(days => %s)", (keep_days,)
    ).rowcount


def note_patient(
    conn: psycopg.Connection[Any], sender: tuple[str, str], control_id: str, patient_id: UUID
) -> None:
    conn.execute(
        "UPDATE hl7_received SET patient_id = %s"
        " WHERE sending_application = %s AND sending_facility = %s AND control_id = %s",
        (patient_id, sender[0][:227], sender[1][:227], control_id),
    )


def register(conn: psycopg.Connection[Any], clinic_id: str, mrn: str, name: str) -> tuple[UUID, bool]:
    """(patient id, created): a new patient, or the one with this MRN with its name updated."""
    row = conn.execute(
        "INSERT INTO patients (clinic_id, mrn, display_name) VALUES (%s, %s, %s)"
        " ON CONFLICT (clinic_id, mrn) DO UPDATE SET display_name = EXCLUDED.display_name"
        " RETURNING id, (xmax = 0)",
        (clinic_id, mrn, name),
    ).fetchone()
    assert row is not None
    return row[0], bool(row[1])


def find(conn: psycopg.Connection[Any], clinic_id: str, mrn: str, *, lock: bool = False) -> UUID:
    row = conn.execute(
        "SELECT id FROM patients WHERE clinic_id = %s AND mrn = %s" + (" FOR NO KEY UPDATE" if lock else ""),
        (clinic_id, mrn),
    ).fetchone()
    if row is None:
        raise MessageError(f"unknown patient: no patient with MRN {mrn!r} in clinic {clinic_id!r}", "204")
    patient_id: UUID = row[0]
    return patient_id


def update_name(conn: psycopg.Connection[Any], clinic_id: str, mrn: str, name: str) -> UUID:
    patient_id = find(conn, clinic_id, mrn, lock=True)
    if name:
        conn.execute("UPDATE patients SET display_name = %s WHERE id = %s", (name, patient_id))
    return patient_id


def end_monitoring(
    conn: psycopg.Connection[Any], clinic_id: str, mrn: str, ended_at: datetime
) -> tuple[UUID, int]:
    """End the patient's monitoring at ``ended_at``: their billing episode, and every device
    currently assigned to them is unassigned from then on (readings stay theirs). Returns the
    patient and how many devices were released."""
    patient_id = find(conn, clinic_id, mrn, lock=True)
    end_billing_episode(conn, patient_id, ended_at)
    released = conn.execute(
        """
        INSERT INTO device_assignments (device_id, patient_id, since)
        SELECT a.device_id, NULL, greatest(%(at)s, a.since) FROM device_assignments a
        WHERE a.patient_id = %(patient)s
          AND a.since = (SELECT max(b.since) FROM device_assignments b WHERE b.device_id = a.device_id)
        ON CONFLICT (device_id, since) DO UPDATE SET patient_id = NULL
        """,
        {"at": ended_at, "patient": patient_id},
    ).rowcount
    return patient_id, released


def merge(
    conn: psycopg.Connection[Any], clinic_id: str, survivor_mrn: str, merged_mrn: str, source: str
) -> tuple[UUID, dict[str, int]]:
    """Move everything of the patient ``merged_mrn`` to ``survivor_mrn`` and audit it.

    Alerts: where both have an active alert for the same condition, the merged patient's is
    resolved (the survivor's stays); then all move. Per-patient rules and missing-data tracking
    move where the survivor has none of their own. Billing episodes that overlap are joined
    (``ingest.billing.episodes.merge_patients``). The merged patient stays, ``merged_into`` the
    survivor.
    """
    survivor = find(conn, clinic_id, survivor_mrn)
    merged = find(conn, clinic_id, merged_mrn)
    for patient in sorted((survivor, merged), key=str):  # one lock order: no deadlock
        conn.execute("SELECT 1 FROM patients WHERE id = %s FOR UPDATE", (patient,))
    row = conn.execute("SELECT merged_into FROM patients WHERE id = %s", (survivor,)).fetchone()
    if row is not None and row[0] is not None:
        raise MessageError(f"patient {survivor_mrn!r} was itself merged into another patient", "204")
    p = {"survivor": survivor, "merged": merged}
    moved: dict[str, int] = {}
    moved["alerts_resolved"] = conn.execute(
        """
        UPDATE alerts m SET status = 'resolved', resolved_at = now(), resolution = 'manual',
            resolved_by = 'patient merge',
            resolve_note = 'patient merged into one with the same active alert',
            updated_at = now()
        WHERE m.patient_id = %(merged)s AND m.status <> 'resolved' AND EXISTS (
            SELECT 1 FROM alerts s WHERE s.patient_id = %(survivor)s AND s.status <> 'resolved'
              AND s.rule_key = m.rule_key AND s.subject = m.subject)
        """,
        p,
    ).rowcount
    moved["alerts"] = conn.execute(
        "UPDATE alerts SET patient_id = %(survivor)s WHERE patient_id = %(merged)s", p
    ).rowcount
    conn.execute(
        "DELETE FROM missing_data_tracking m WHERE m.patient_id = %(merged)s AND EXISTS ("
        " SELECT 1 FROM missing_data_tracking s WHERE s.patient_id = %(survivor)s AND s.metric = m.metric)",
        p,
    )
    moved["missing_data_tracking"] = conn.execute(
        "UPDATE missing_data_tracking SET patient_id = %(survivor)s WHERE patient_id = %(merged)s", p
    ).rowcount
    moved["alert_rules"] = conn.execute(
        "UPDATE alert_rules r SET patient_id = %(survivor)s WHERE r.patient_id = %(merged)s AND NOT EXISTS ("
        " SELECT 1 FROM alert_rules s WHERE s.patient_id = %(survivor)s AND s.key = r.key)",
        p,
    ).rowcount
    merge_billing(conn, survivor, merged)  # episodes and days with readings, before the devices move
    tables = list(_MOVED_PLAIN) + [t for t in _MOVED_IF_PRESENT if _has_patient_column(conn, t)]
    for table in tables:
        statement = sql.SQL("UPDATE {} SET patient_id = %(survivor)s WHERE patient_id = %(merged)s")
        moved[table] = conn.execute(statement.format(sql.Identifier(table)), p).rowcount
    conn.execute("UPDATE patients SET merged_into = %(survivor)s WHERE id = %(merged)s", p)
    conn.execute("UPDATE patients SET merged_into = %(survivor)s WHERE merged_into = %(merged)s", p)
    conn.execute(
        "INSERT INTO patient_merges (clinic_id, survivor_id, merged_id, survivor_mrn, merged_mrn,"
        " source, moved) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (clinic_id, survivor, merged, survivor_mrn, merged_mrn, source[:500], Jsonb(moved)),
    )
    return survivor, moved


def _has_patient_column(conn: psycopg.Connection[Any], table: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name = %s AND column_name = 'patient_id'",
        (table,),
    ).fetchone()
    return row is not None

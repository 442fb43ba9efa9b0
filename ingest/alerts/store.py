"""SQL of the alert engine: the per-patient locks and what is read under them, and the alerts
themselves (open, raise, touch, resolve). Events: ``ingest.alerts.events``; rules:
``ingest.alerts.rulebook``."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ingest.alerts.public import ALERT_COLUMNS
from ingest.alerts.rules import Rule
from ingest.db.rows import fetch_one

logger = logging.getLogger(__name__)

PATIENT_LOCK_SALT: Final = 0x2B7E151628AED2A6  # keeps patient locks apart from other advisory locks

AlertKey = tuple[UUID, str, str]  # (patient, rule key, subject)


# --------------------------------------------------------------------------- batch locks


@dataclass(frozen=True, slots=True)
class Prepared:
    """What the engine learns once it holds the locks of a batch's patients."""

    clinic_of: dict[UUID, str]
    rules_version: int
    active: dict[AlertKey, dict[str, Any]]
    extra: list[list[tuple[Any, ...]]]  # rows of the extra queries, in order


def lock_key(patient_id: UUID) -> int:
    """The advisory lock serialising alert decisions for one patient (ingest and scheduler)."""
    high = patient_id.int >> 64
    return (high - (1 << 64) if high >= 1 << 63 else high) ^ PATIENT_LOCK_SALT


def prepare_batch(
    conn: psycopg.Connection[Any],
    patient_ids: Sequence[UUID],
    clinics: ClinicCache,
    known: dict[UUID, str],
    extra: Sequence[tuple[str, Sequence[Any]]] = (),
) -> Prepared:
    """Lock the patients (in a fixed order, so concurrent batches cannot deadlock), then read
    the rules version, their active alerts, the clinics of those not in ``known`` and the
    ``extra`` queries' rows (the history the rules need), in one round trip.

    The reads are statements after the lock statement, so under READ COMMITTED they see
    everything committed by a transaction that held one of these locks before us.
    """
    ordered = sorted(patient_ids, key=lambda p: p.int)
    keys = [lock_key(p) for p in ordered]
    unknown = [p for p in ordered if p not in known] if len(known) < len(ordered) else []
    with conn.pipeline():
        locks = conn.execute(
            "SELECT count(*), (SELECT version FROM alert_config) FROM"
            " (SELECT pg_advisory_xact_lock(k) FROM unnest(%b::bigint[]) AS t(k)) AS held",
            (keys,),
        )
        alerts = conn.cursor(row_factory=dict_row)
        alerts.execute(
            f"SELECT {ALERT_COLUMNS} FROM alerts WHERE patient_id = ANY(%b) AND status <> 'resolved'",
            (ordered,),
        )
        found = None
        if unknown:
            found = conn.execute("SELECT id, clinic_id FROM patients WHERE id = ANY(%b)", (unknown,))
        extras = [conn.execute(query, params) for query, params in extra]
    row = locks.fetchone()
    clinic_of = dict(known)
    if found is not None:
        for patient_id, clinic_id in found.fetchall():
            clinics.put(patient_id, clinic_id)
            clinic_of[patient_id] = clinic_id
    return Prepared(
        clinic_of=clinic_of,
        rules_version=int(row[1]) if row else 0,
        active={(r["patient_id"], r["rule_key"], r["subject"]): r for r in alerts.fetchall()},
        extra=[cur.fetchall() for cur in extras],
    )


class ClinicCache:
    """Patient -> clinic, remembered for a while (a patient's clinic is fixed at registration;
    the entries expire anyway). Alerts take their clinic from the database when opened."""

    def __init__(self, ttl_s: float = 300.0, max_entries: int = 200_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[int, tuple[str, float]] = {}

    def known(self, patient_ids: Iterable[UUID]) -> dict[UUID, str]:
        """The clinics of those of ``patient_ids`` that are remembered (one clock read)."""
        now = time.monotonic()
        entries = self._entries
        found: dict[UUID, str] = {}
        for p in patient_ids:
            entry = entries.get(p.int)
            if entry is not None and entry[1] >= now:
                found[p] = entry[0]
        return found

    def put(self, patient_id: UUID, clinic_id: str) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[patient_id.int] = (clinic_id, time.monotonic() + self.ttl_s)


def newest_before(
    conn: psycopg.Connection[Any],
    patient_id: UUID,
    metric: str,
    exclude: Collection[tuple[str, datetime]],
) -> datetime | None:
    """The newest measured_at of a patient's metric, ignoring the readings in ``exclude``
    ((device, measured_at) of this batch's new readings)."""
    rows = conn.execute(
        "SELECT device_id, measured_at FROM readings WHERE patient_id = %s AND metric = %s"
        " ORDER BY measured_at DESC LIMIT %s",
        (patient_id, metric, len(exclude) + 1),
    ).fetchall()
    for device_id, at in rows:
        if (device_id, at) not in exclude:
            return at  # type: ignore[no-any-return]
    return None


# --------------------------------------------------------------------------- alerts


def active_alert(conn: psycopg.Connection[Any], key: AlertKey) -> dict[str, Any] | None:
    return fetch_one(
        conn,
        f"SELECT {ALERT_COLUMNS} FROM alerts WHERE patient_id = %s AND rule_key = %s"
        " AND subject = %s AND status <> 'resolved'",
        key,
    )


def episode_reported(conn: psycopg.Connection[Any], key: AlertKey, at: datetime) -> bool:
    """Did a resolved alert of this condition already cover the time ``at``?"""
    row = conn.execute(
        "SELECT 1 FROM alerts WHERE patient_id = %s AND rule_key = %s AND subject = %s"
        " AND status = 'resolved' AND onset_at <= %s AND coalesce(cleared_at, latest_at) >= %s"
        " LIMIT 1",
        (*key, at, at),
    ).fetchone()
    return row is not None


@dataclass(frozen=True, slots=True)
class NewAlert:
    patient_id: UUID
    rule: Rule
    subject: str
    severity: str
    message: str
    onset_at: datetime
    latest_at: datetime
    value: float | None = None
    last_value: float | None = None
    unit: str | None = None
    device_id: str | None = None
    late: bool = False
    details: dict[str, Any] = field(default_factory=dict)


def insert_alert(conn: psycopg.Connection[Any], a: NewAlert) -> dict[str, Any] | None:
    """Open an alert; None when one is already active for the condition (another transaction)."""
    return fetch_one(
        conn,
        "INSERT INTO alerts (clinic_id, patient_id, rule_key, rule_id, kind, metric, subject,"
        " device_id, severity, value, unit, last_value, message, details, onset_at, latest_at,"
        " late, critical_since)"
        " VALUES ((SELECT clinic_id FROM patients WHERE id = %(patient)s), %(patient)s, %(key)s,"
        " %(rule_id)s, %(kind)s, %(metric)s,"
        " %(subject)s, %(device)s, %(severity)s, %(value)s, %(unit)s, %(last)s, %(message)s,"
        " %(details)s, %(onset)s, %(latest)s, %(late)s,"
        " CASE WHEN %(severity)s = 'critical' THEN now() END)"
        " ON CONFLICT (patient_id, rule_key, subject) WHERE status <> 'resolved' DO NOTHING"
        f" RETURNING {ALERT_COLUMNS}",
        {
            "patient": a.patient_id,
            "key": a.rule.key,
            "rule_id": a.rule.id,
            "kind": a.rule.kind,
            "metric": a.rule.metric,
            "subject": a.subject,
            "device": a.device_id,
            "severity": a.severity,
            "value": a.value,
            "unit": a.unit,
            "last": a.last_value if a.last_value is not None else a.value,
            "message": a.message[:500],
            "details": Jsonb(a.details),
            "onset": a.onset_at,
            "latest": a.latest_at,
            "late": a.late,
        },
    )


def raise_severity(
    conn: psycopg.Connection[Any], alert_id: UUID, severity: str, message: str
) -> dict[str, Any] | None:
    """Escalate an active alert's severity; None when it is resolved or already as severe."""
    return fetch_one(
        conn,
        "UPDATE alerts SET severity = %(s)s, message = %(m)s, updated_at = now(),"
        " critical_since = CASE WHEN %(s)s = 'critical' THEN now() ELSE critical_since END"
        " WHERE id = %(id)s AND status <> 'resolved' AND severity <> %(s)s"
        " AND (severity = 'warning' AND %(s)s = 'critical')"
        f" RETURNING {ALERT_COLUMNS}",
        {"id": alert_id, "s": severity, "m": message[:500]},
    )


def set_detail(conn: psycopg.Connection[Any], alert_id: UUID, name: str, value: Any) -> bool:
    """Set one entry of an active alert's ``details`` (False when it was resolved meanwhile)."""
    row = fetch_one(
        conn,
        "UPDATE alerts SET details = jsonb_set(coalesce(details, '{}'::jsonb), %(path)s, %(value)s),"
        " updated_at = now() WHERE id = %(id)s AND status <> 'resolved' RETURNING id",
        {"id": alert_id, "path": [name], "value": Jsonb(value)},
    )
    return row is not None


def auto_resolve(
    conn: psycopg.Connection[Any],
    alert_id: UUID,
    *,
    cleared_at: datetime | None,
    note: str,
    last_value: float | None = None,
) -> dict[str, Any] | None:
    """Resolve because the condition cleared; None when it was resolved meanwhile."""
    return fetch_one(
        conn,
        "UPDATE alerts SET status = 'resolved', resolved_at = now(), resolved_by = 'system',"
        " resolution = 'auto', resolve_note = %(note)s, cleared_at = %(cleared)s,"
        " last_value = coalesce(%(value)s, last_value), updated_at = now()"
        " WHERE id = %(id)s AND status <> 'resolved'"
        f" RETURNING {ALERT_COLUMNS}",
        {"id": alert_id, "note": note[:2000], "cleared": cleared_at, "value": last_value},
    )


def mark_cleared(
    conn: psycopg.Connection[Any],
    alert_id: UUID,
    *,
    cleared_at: datetime,
    latest_at: datetime,
    last_value: float | None,
) -> dict[str, Any] | None:
    """The condition of an open, latching alert cleared: it stays open, marked cleared (None when
    it was acknowledged, resolved or marked meanwhile). ``latest_at`` carries the newest reading
    that held it, should this transaction have moved it."""
    return fetch_one(
        conn,
        "UPDATE alerts SET cleared_at = %(cleared)s, latest_at = greatest(latest_at, %(latest)s),"
        " last_value = coalesce(%(value)s, last_value), updated_at = now()"
        " WHERE id = %(id)s AND status = 'open' AND cleared_at IS NULL"
        f" RETURNING {ALERT_COLUMNS}",
        {"id": alert_id, "cleared": cleared_at, "latest": latest_at, "value": last_value},
    )


def recur(
    conn: psycopg.Connection[Any], alert_id: UUID, *, latest_at: datetime, last_value: float | None
) -> dict[str, Any] | None:
    """The condition of a cleared alert is back: not cleared any more, newest reading moved."""
    return fetch_one(
        conn,
        "UPDATE alerts SET cleared_at = NULL, latest_at = greatest(latest_at, %(latest)s),"
        " last_value = coalesce(%(value)s, last_value), updated_at = now()"
        " WHERE id = %(id)s AND status <> 'resolved' AND cleared_at IS NOT NULL"
        f" RETURNING {ALERT_COLUMNS}",
        {"id": alert_id, "latest": latest_at, "value": last_value},
    )


def touch_alerts(conn: psycopg.Connection[Any], touches: dict[UUID, tuple[datetime, float | None]]) -> None:
    """Move active alerts' newest supporting reading forward (no event: nothing changed state)."""
    if not touches:
        return
    ids = sorted(touches, key=str)
    conn.execute(
        "UPDATE alerts a SET latest_at = t.latest,"
        " last_value = coalesce(t.value, a.last_value), updated_at = now()"
        " FROM unnest(%s::uuid[], %s::timestamptz[], %s::float8[]) AS t(id, latest, value)"
        " WHERE a.id = t.id AND a.status <> 'resolved' AND t.latest > a.latest_at",
        (ids, [touches[i][0] for i in ids], [touches[i][1] for i in ids]),
    )

"""SQL of the alert engine: metric state locks, effective rules, alerts and their events.

Every change of an alert writes an event in the same transaction. Event writers take one
transaction-scoped advisory lock first, so event ids become visible in increasing order: a reader
that asks for "ids above the last one I saw" never skips an event that commits late.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ingest.alerts.public import ALERT_COLUMNS, alert_public
from ingest.alerts.rules import Rule, RuleRow, merge

logger = logging.getLogger(__name__)

EVENTS_LOCK: Final = 0x52504D5F414C5254  # "RPM_ALRT": serialises alert event ids with commits
NOTIFY_CHANNEL: Final = "rpm_alert_events"
RULE_COLUMNS: Final = "id, key, kind, metric, clinic_id, patient_id, enabled, params, updated_at"

AlertKey = tuple[UUID, str, str]  # (patient, rule key, subject)


# --------------------------------------------------------------------------- metric state


def lock_metric_state(
    conn: psycopg.Connection[Any], newest: Sequence[tuple[UUID, str, datetime]]
) -> dict[tuple[UUID, str], datetime | None]:
    """Record the newest measured_at per (patient, metric) and lock those rows to commit.

    Returns, per key, the newest measured_at stored before this batch (None: first reading).
    Rows are taken in key order so that concurrent batches cannot deadlock.
    """
    if not newest:
        return {}
    items = sorted(newest, key=lambda x: (str(x[0]), x[1]))
    rows = conn.execute(
        "INSERT INTO alert_metric_state AS s (patient_id, metric, last_measured_at)"
        " SELECT * FROM unnest(%s::uuid[], %s::text[], %s::timestamptz[])"
        " ON CONFLICT (patient_id, metric) DO UPDATE SET"
        "   prev_measured_at = s.last_measured_at,"
        "   last_measured_at = GREATEST(s.last_measured_at, EXCLUDED.last_measured_at)"
        " RETURNING patient_id, metric, prev_measured_at",
        ([i[0] for i in items], [i[1] for i in items], [i[2] for i in items]),
    ).fetchall()
    return {(r[0], r[1]): r[2] for r in rows}


# --------------------------------------------------------------------------- rules


@dataclass
class RuleBook:
    """Effective rules per patient, merged on demand and memoised by the rows they come from."""

    clinic_of: dict[UUID, str]
    defaults: dict[str, RuleRow]
    clinic_rows: dict[tuple[str, str], RuleRow]
    patient_rows: dict[tuple[UUID, str], RuleRow]
    cache: dict[tuple[Any, ...], Rule] = field(default_factory=dict)

    def rule(self, patient_id: UUID, key: str) -> Rule | None:
        base = self.defaults.get(key)
        clinic = self.clinic_of.get(patient_id)
        if base is None or clinic is None:
            return None
        layers = [base]
        if (row := self.clinic_rows.get((clinic, key))) is not None:
            layers.append(row)
        if (row := self.patient_rows.get((patient_id, key))) is not None:
            layers.append(row)
        memo = tuple(r.id for r in layers)
        found = self.cache.get(memo)
        if found is None:
            found = self.cache[memo] = merge(layers)
        return found

    def keys(self, *, kind: str | None = None, metric: str | None = None) -> list[str]:
        return [
            k
            for k, row in self.defaults.items()
            if (kind is None or row.kind == kind) and (metric is None or row.metric == metric)
        ]


def rule_row(r: dict[str, Any]) -> RuleRow:
    return RuleRow(
        id=r["id"],
        key=r["key"],
        kind=r["kind"],
        metric=r["metric"],
        clinic_id=r["clinic_id"],
        patient_id=r["patient_id"],
        enabled=r["enabled"],
        params=r["params"],
    )


def load_rule_book(
    conn: psycopg.Connection[Any],
    patient_ids: Iterable[UUID],
    *,
    clinic_ids: Iterable[str] = (),
) -> RuleBook:
    """The rule rows that matter for these patients (and clinics), ready to merge."""
    pids = list(set(patient_ids))
    with conn.cursor() as cur:
        cur.execute("SELECT id, clinic_id FROM patients WHERE id = ANY(%s)", (pids,))
        clinic_of: dict[UUID, str] = {r[0]: r[1] for r in cur.fetchall()}
    clinics = sorted(set(clinic_of.values()) | set(clinic_ids))
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {RULE_COLUMNS} FROM alert_rules"
            " WHERE (clinic_id IS NULL AND patient_id IS NULL)"
            " OR (patient_id IS NULL AND clinic_id = ANY(%(c)s))"
            " OR patient_id = ANY(%(p)s)",
            {"c": clinics, "p": pids},
        )
        rows = [rule_row(r) for r in cur.fetchall()]
    book = RuleBook(clinic_of=clinic_of, defaults={}, clinic_rows={}, patient_rows={})
    for row in rows:
        if row.patient_id is not None:
            book.patient_rows[(row.patient_id, row.key)] = row
        elif row.clinic_id is not None:
            book.clinic_rows[(row.clinic_id, row.key)] = row
        else:
            book.defaults[row.key] = row
    return book


# --------------------------------------------------------------------------- alerts


def active_alerts(
    conn: psycopg.Connection[Any], patient_ids: Iterable[UUID]
) -> dict[AlertKey, dict[str, Any]]:
    """Alerts not yet resolved for these patients, by (patient, rule key, subject)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {ALERT_COLUMNS} FROM alerts WHERE patient_id = ANY(%s) AND status <> 'resolved'",
            (list(set(patient_ids)),),
        )
        return {(r["patient_id"], r["rule_key"], r["subject"]): r for r in cur.fetchall()}


def active_alert(conn: psycopg.Connection[Any], key: AlertKey) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {ALERT_COLUMNS} FROM alerts WHERE patient_id = %s AND rule_key = %s"
            " AND subject = %s AND status <> 'resolved'",
            key,
        )
        return cur.fetchone()


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
    clinic_id: str
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
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "INSERT INTO alerts (clinic_id, patient_id, rule_key, rule_id, kind, metric, subject,"
            " device_id, severity, value, unit, last_value, message, details, onset_at, latest_at,"
            " late, critical_since)"
            " VALUES (%(clinic)s, %(patient)s, %(key)s, %(rule_id)s, %(kind)s, %(metric)s,"
            " %(subject)s, %(device)s, %(severity)s, %(value)s, %(unit)s, %(last)s, %(message)s,"
            " %(details)s, %(onset)s, %(latest)s, %(late)s,"
            " CASE WHEN %(severity)s = 'critical' THEN now() END)"
            " ON CONFLICT (patient_id, rule_key, subject) WHERE status <> 'resolved' DO NOTHING"
            f" RETURNING {ALERT_COLUMNS}",
            {
                "clinic": a.clinic_id,
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
        return cur.fetchone()


def raise_severity(
    conn: psycopg.Connection[Any], alert_id: UUID, severity: str, message: str
) -> dict[str, Any] | None:
    """Escalate an active alert's severity; None when it is resolved or already as severe."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "UPDATE alerts SET severity = %(s)s, message = %(m)s, updated_at = now(),"
            " critical_since = CASE WHEN %(s)s = 'critical' THEN now() ELSE critical_since END"
            " WHERE id = %(id)s AND status <> 'resolved' AND severity <> %(s)s"
            " AND (severity = 'warning' AND %(s)s = 'critical')"
            f" RETURNING {ALERT_COLUMNS}",
            {"id": alert_id, "s": severity, "m": message[:500]},
        )
        return cur.fetchone()


def auto_resolve(
    conn: psycopg.Connection[Any],
    alert_id: UUID,
    *,
    cleared_at: datetime | None,
    note: str,
    last_value: float | None = None,
) -> dict[str, Any] | None:
    """Resolve because the condition cleared; None when it was resolved meanwhile."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "UPDATE alerts SET status = 'resolved', resolved_at = now(), resolved_by = 'system',"
            " resolution = 'auto', resolve_note = %(note)s, cleared_at = %(cleared)s,"
            " last_value = coalesce(%(value)s, last_value), updated_at = now()"
            " WHERE id = %(id)s AND status <> 'resolved'"
            f" RETURNING {ALERT_COLUMNS}",
            {"id": alert_id, "note": note[:2000], "cleared": cleared_at, "value": last_value},
        )
        return cur.fetchone()


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


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class PendingEvent:
    type: str
    alert: dict[str, Any]  # the row after the change
    actor: str | None = None
    note: str | None = None


def write_events(conn: psycopg.Connection[Any], events: Sequence[PendingEvent], *, origin: str) -> list[int]:
    """Append events (history + stream), queue their webhook deliveries, notify listeners."""
    if not events:
        return []
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (EVENTS_LOCK,))
    ids: list[int] = []
    with conn.cursor() as cur:
        for e in events:
            row = e.alert
            cur.execute(
                "INSERT INTO alert_events (alert_id, clinic_id, patient_id, type, actor, note,"
                " origin, alert) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (
                    row["id"],
                    row["clinic_id"],
                    row["patient_id"],
                    e.type,
                    e.actor,
                    e.note,
                    origin,
                    Jsonb(alert_public(row)),
                ),
            )
            fetched = cur.fetchone()
            assert fetched is not None
            ids.append(fetched[0])
        cur.execute(
            "INSERT INTO webhook_deliveries (webhook_id, event_id)"
            " SELECT w.id, e.id FROM alert_events e JOIN alert_webhooks w"
            "   ON w.clinic_id = e.clinic_id AND w.enabled AND e.type = ANY(w.event_types)"
            "   AND (w.min_severity = 'warning' OR e.alert->>'severity' = 'critical')"
            " WHERE e.id = ANY(%s) ON CONFLICT DO NOTHING",
            (ids,),
        )
        cur.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(ids[-1])))
    logger.debug("wrote %d alert events up to %d", len(ids), ids[-1])
    return ids


def events_after(
    conn: psycopg.Connection[Any],
    after_id: int,
    *,
    limit: int = 500,
    clinic_id: str | None = None,
) -> list[dict[str, Any]]:
    """Events with id above ``after_id`` in id order (optionally one clinic's)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT id, alert_id, clinic_id, patient_id, type, at, actor, note, origin, alert"
            " FROM alert_events WHERE id > %(after)s"
            " AND (%(clinic)s::text IS NULL OR clinic_id = %(clinic)s)"
            " ORDER BY id LIMIT %(limit)s",
            {"after": after_id, "clinic": clinic_id, "limit": limit},
        )
        return cur.fetchall()


def last_event_id(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT coalesce(max(id), 0) FROM alert_events").fetchone()
    return int(row[0]) if row else 0


def group_by_patient(rows: Iterable[dict[str, Any]]) -> dict[UUID, list[dict[str, Any]]]:
    out: dict[UUID, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[r["patient_id"]].append(r)
    return out

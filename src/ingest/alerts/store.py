"""SQL of the alert engine: metric state locks, effective rules, alerts and their events.

Every change of an alert writes an event in the same transaction. Event writers take one
transaction-scoped advisory lock first, so event ids become visible in increasing order: a reader
that asks for "ids above the last one I saw" never skips an event that commits late.
"""

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

from ingest.alerts.public import ALERT_COLUMNS, alert_public
from ingest.alerts.rules import Rule, RuleRow, merge

logger = logging.getLogger(__name__)

EVENTS_LOCK: Final = 0x52504D5F414C5254  # "RPM_ALRT": serialises alert event ids with commits
PATIENT_LOCK_SALT: Final = 0x2B7E151628AED2A6  # keeps patient locks apart from other advisory locks
NOTIFY_CHANNEL: Final = "rpm_alert_events"
RULE_COLUMNS: Final = "id, key, kind, metric, clinic_id, patient_id, enabled, params, updated_at"

AlertKey = tuple[UUID, str, str]  # (patient, rule key, subject)


# --------------------------------------------------------------------------- metric state


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
            " (SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS t(k)) AS held",
            (keys,),
        )
        alerts = conn.cursor(row_factory=dict_row)
        alerts.execute(
            f"SELECT {ALERT_COLUMNS} FROM alerts WHERE patient_id = ANY(%s) AND status <> 'resolved'",
            (ordered,),
        )
        found = None
        if unknown:
            found = conn.execute("SELECT id, clinic_id FROM patients WHERE id = ANY(%s)", (unknown,))
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

    def get(self, patient_id: UUID) -> str | None:
        entry = self._entries.get(patient_id.int)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

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


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True, slots=True)
class MetricRules:
    """The rules a patient's readings of one metric go through (enabled ones only)."""

    threshold: Rule | None  # None also when it sets no bound
    rates: tuple[Rule, ...]


@dataclass
class RuleBook:
    """Effective rules per patient, merged on demand and memoised by the rows they come from."""

    clinic_of: dict[UUID, str]
    defaults: dict[str, RuleRow]
    clinic_rows: dict[tuple[str, str], RuleRow]
    patient_rows: dict[tuple[UUID, str], RuleRow]
    cache: dict[tuple[Any, ...], Rule] = field(default_factory=dict)
    memo: dict[tuple[Any, ...], Any] = field(default_factory=dict)

    def rule(self, patient_id: UUID, key: str) -> Rule | None:
        base = self.defaults.get(key)
        clinic = self.clinic_of.get(patient_id)
        if base is None or clinic is None:
            return None
        crow = self.clinic_rows.get((clinic, key)) if self.clinic_rows else None
        prow = self.patient_rows.get((patient_id, key)) if self.patient_rows else None
        memo = (base.id, crow.id if crow else 0, prow.id if prow else 0)
        found = self.cache.get(memo)
        if found is None:
            layers = [base, *(r for r in (crow, prow) if r is not None)]
            found = self.cache[memo] = merge(layers)
        return found

    def keys(self, *, kind: str | None = None, metric: str | None = None) -> list[str]:
        memo = ("keys", kind, metric)
        found: list[str] | None = self.memo.get(memo)
        if found is None:
            found = self.memo[memo] = [
                k
                for k, row in self.defaults.items()
                if (kind is None or row.kind == kind) and (metric is None or row.metric == metric)
            ]
        return found

    def metric_rules(self, patient_id: UUID, metric: str) -> MetricRules | None:
        """Memoised per clinic (or per patient, for patients with overrides of their own)."""
        clinic = self.clinic_of.get(patient_id)
        if clinic is None:
            return None
        own: frozenset[int] | None = self.memo.get(("patients with rules",))
        if own is None:
            own = self.memo[("patients with rules",)] = frozenset(p.int for p, _ in self.patient_rows)
        memo = ("metric", patient_id.int if patient_id.int in own else clinic, metric)
        found: MetricRules | None = self.memo.get(memo)
        if found is None:
            threshold = self.rule(patient_id, f"threshold:{metric}")
            if threshold is not None and not (threshold.enabled and threshold.threshold.active):
                threshold = None
            rates = (self.rule(patient_id, k) for k in self.keys(kind="rate_of_change", metric=metric))
            found = self.memo[memo] = MetricRules(
                threshold, tuple(r for r in rates if r is not None and r.enabled)
            )
        return found


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
    rows = [e.alert for e in events]
    with conn.pipeline():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (EVENTS_LOCK,))
        cur = conn.execute(
            "WITH e AS ("
            "  INSERT INTO alert_events (alert_id, clinic_id, patient_id, type, actor, note, origin, alert)"
            "  SELECT a, c, p, t, who, note, %s, j FROM unnest(%s::uuid[], %s::text[], %s::uuid[],"
            "    %s::text[], %s::text[], %s::text[], %s::jsonb[]) WITH ORDINALITY"
            "    AS u(a, c, p, t, who, note, j, ord)"
            "  ORDER BY ord RETURNING id, clinic_id, type, alert"
            "), d AS ("
            "  INSERT INTO webhook_deliveries (webhook_id, event_id)"
            "  SELECT w.id, e.id FROM e JOIN alert_webhooks w"
            "    ON w.clinic_id = e.clinic_id AND w.enabled AND e.type = ANY(w.event_types)"
            "    AND (w.min_severity = 'warning' OR e.alert->>'severity' = 'critical')"
            "  ON CONFLICT DO NOTHING"
            ") SELECT id FROM e ORDER BY id",
            (
                origin,
                [r["id"] for r in rows],
                [r["clinic_id"] for r in rows],
                [r["patient_id"] for r in rows],
                [e.type for e in events],
                [e.actor for e in events],
                [e.note for e in events],
                [Jsonb(alert_public(r)) for r in rows],
            ),
        )
        conn.execute("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))
    ids = [r[0] for r in cur.fetchall()]
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

"""Rule rows of the three levels (service default, clinic, patient) and their merge per patient."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, LiteralString
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from ingest.alerts.rules import ParamModels, Rule, RuleRow, merge

RULE_COLUMNS: Final = "id, key, kind, metric, clinic_id, patient_id, enabled, params, updated_at"


@dataclass(frozen=True, slots=True)
class MetricRules:
    """The rules a patient's readings of one metric go through (enabled ones only), as the
    history planner (:func:`ingest.alerts.planner.metric_rules`) finds them."""

    threshold: Rule | None  # None also when it sets no bound
    rates: tuple[Rule, ...]


@dataclass
class RuleBook:
    """Effective rules per patient, merged on demand and memoised by the rows they come from;
    ``models`` (from the registry of rule kinds) validates each kind's parameters."""

    clinic_of: dict[UUID, str]
    defaults: dict[str, RuleRow]
    clinic_rows: dict[tuple[str, str], RuleRow]
    patient_rows: dict[tuple[UUID, str], RuleRow]
    models: ParamModels
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
            found = self.cache[memo] = merge(layers, self.models)
        return found

    def enabled_rules(self, patient_id: UUID, *, kind: str, metric: str | None = None) -> Iterator[Rule]:
        """The patient's effective rules of a kind (and metric) that are enabled."""
        for key in self.keys(kind=kind, metric=metric):
            rule = self.rule(patient_id, key)
            if rule is not None and rule.enabled:
                yield rule

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

    def patients_with_rules(self) -> frozenset[int]:
        """Patients (as UUID ints) who have rule rows of their own."""
        own: frozenset[int] | None = self.memo.get(("patients with rules",))
        if own is None:
            own = self.memo[("patients with rules",)] = frozenset(p.int for p, _ in self.patient_rows)
        return own


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


def read_rule_rows(
    conn: psycopg.Connection[Any], where: LiteralString = "", params: Any = None
) -> list[RuleRow]:
    """The rule rows ``where`` selects (every row without it)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT {RULE_COLUMNS} FROM alert_rules {where}", params)
        return [rule_row(r) for r in cur.fetchall()]


ByLevel = tuple[dict[str, RuleRow], dict[tuple[str, str], RuleRow], dict[tuple[UUID, str], RuleRow]]


def by_level(rows: Iterable[RuleRow]) -> ByLevel:
    """Rows split by level: service defaults by key, clinic rows by (clinic, key), patient rows by
    (patient, key)."""
    defaults: dict[str, RuleRow] = {}
    clinic_rows: dict[tuple[str, str], RuleRow] = {}
    patient_rows: dict[tuple[UUID, str], RuleRow] = {}
    for row in rows:
        if row.patient_id is not None:
            patient_rows[(row.patient_id, row.key)] = row
        elif row.clinic_id is not None:
            clinic_rows[(row.clinic_id, row.key)] = row
        else:
            defaults[row.key] = row
    return defaults, clinic_rows, patient_rows


def load_rule_book(
    conn: psycopg.Connection[Any],
    patient_ids: Iterable[UUID],
    *,
    models: ParamModels,
    clinic_ids: Iterable[str] = (),
) -> RuleBook:
    """The rule rows that matter for these patients (and clinics), ready to merge."""
    pids = list(set(patient_ids))
    with conn.cursor() as cur:
        cur.execute("SELECT id, clinic_id FROM patients WHERE id = ANY(%s)", (pids,))
        clinic_of: dict[UUID, str] = {r[0]: r[1] for r in cur.fetchall()}
    clinics = sorted(set(clinic_of.values()) | set(clinic_ids))
    rows = read_rule_rows(
        conn,
        "WHERE (clinic_id IS NULL AND patient_id IS NULL)"
        " OR (patient_id IS NULL AND clinic_id = ANY(%(c)s))"
        " OR patient_id = ANY(%(p)s)",
        {"c": clinics, "p": pids},
    )
    defaults, clinic_rows, patient_rows = by_level(rows)
    return RuleBook(
        clinic_of=clinic_of,
        defaults=defaults,
        clinic_rows=clinic_rows,
        patient_rows=patient_rows,
        models=models,
    )

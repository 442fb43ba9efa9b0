"""Rule overrides (clinic and patient level) and the effective rules they produce.

Parameters are validated with the registry of rule kinds the caller runs with (the service's by
default)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from ingest.alerts.kinds import REGISTRY, KindRegistry
from ingest.alerts.rulebook import RuleBook, load_rule_book
from ingest.alerts.rules import Rule, merge
from ingest.errors import UnknownRule


def _book(
    conn: psycopg.Connection[Any], patient_id: UUID | None, clinic_id: str, kinds: KindRegistry
) -> RuleBook:
    book = load_rule_book(
        conn, [patient_id] if patient_id else [], models=kinds.models, clinic_ids=[clinic_id]
    )
    if patient_id is not None:
        book.clinic_of[patient_id] = clinic_id
    return book


def effective_rules(
    conn: psycopg.Connection[Any],
    *,
    clinic_id: str,
    patient_id: UUID | None = None,
    kinds: KindRegistry = REGISTRY,
) -> list[Rule]:
    """Every rule as it applies to the patient (or to the clinic's patients without overrides)."""
    book = _book(conn, patient_id, clinic_id, kinds)
    out = []
    for key in sorted(book.defaults):
        out.append(_effective(book, key, clinic_id, patient_id))
    return out


def effective_rule(
    conn: psycopg.Connection[Any],
    key: str,
    *,
    clinic_id: str,
    patient_id: UUID | None = None,
    kinds: KindRegistry = REGISTRY,
) -> Rule:
    book = _book(conn, patient_id, clinic_id, kinds)
    if key not in book.defaults:
        raise UnknownRule(f"no alert rule {key!r}")
    return _effective(book, key, clinic_id, patient_id)


def _effective(book: RuleBook, key: str, clinic_id: str, patient_id: UUID | None) -> Rule:
    if patient_id is not None:
        rule = book.rule(patient_id, key)
        assert rule is not None
        return rule
    layers = [book.defaults[key]]
    if (row := book.clinic_rows.get((clinic_id, key))) is not None:
        layers.append(row)
    return merge(layers, book.models)


def set_override(
    conn: psycopg.Connection[Any],
    key: str,
    *,
    clinic_id: str,
    patient_id: UUID | None,
    enabled: bool | None,
    params: Mapping[str, Any],
    updated_by: str,
    kinds: KindRegistry = REGISTRY,
) -> Rule:
    """Replace the clinic's (or patient's) override of rule ``key``; validated against the levels
    below it. Raises :class:`UnknownRule` or :class:`InvalidRule`."""
    book = _book(conn, patient_id, clinic_id, kinds)
    base = book.defaults.get(key)
    if base is None:
        raise UnknownRule(f"no alert rule {key!r}")
    merged: dict[str, Any] = dict(base.params)
    if patient_id is not None and (row := book.clinic_rows.get((clinic_id, key))) is not None:
        merged.update(row.params)
    merged.update(params)
    kind = kinds[base.kind]  # raises InvalidRule for a kind this code does not know
    kinds.parse(base.kind, merged)  # raises InvalidRule
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"rule:{clinic_id}:{patient_id}:{key}",))
    _delete_row(conn, key, clinic_id, patient_id)
    conn.execute(
        "INSERT INTO alert_rules (key, kind, metric, clinic_id, patient_id, enabled, params,"
        " updated_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (key, base.kind, base.metric, clinic_id, patient_id, enabled, Jsonb(dict(params)), updated_by),
    )
    if patient_id is not None:
        kind.after_patient_override(conn, patient_id, base)
    return effective_rule(conn, key, clinic_id=clinic_id, patient_id=patient_id, kinds=kinds)


def _delete_row(conn: psycopg.Connection[Any], key: str, clinic_id: str, patient_id: UUID | None) -> None:
    """Delete the patient's override of rule ``key`` (or, without a patient, the clinic's)."""
    if patient_id is None:
        conn.execute(
            "DELETE FROM alert_rules WHERE clinic_id = %s AND patient_id IS NULL AND key = %s",
            (clinic_id, key),
        )
    else:
        conn.execute("DELETE FROM alert_rules WHERE patient_id = %s AND key = %s", (patient_id, key))


def delete_override(
    conn: psycopg.Connection[Any],
    key: str,
    *,
    clinic_id: str,
    patient_id: UUID | None,
    kinds: KindRegistry = REGISTRY,
) -> Rule:
    effective_rule(conn, key, clinic_id=clinic_id, patient_id=patient_id, kinds=kinds)  # UnknownRule if none
    _delete_row(conn, key, clinic_id, patient_id)
    return effective_rule(conn, key, clinic_id=clinic_id, patient_id=patient_id, kinds=kinds)

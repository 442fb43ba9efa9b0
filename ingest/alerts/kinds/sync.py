"""Bring the database in step with a registry of rule kinds: the ``alert_rule_kinds`` table (which
``alert_rules.kind`` references) and the kinds' default rules.

Idempotent, and it writes nothing when the database is already in step (so the rules' version,
which every process watches, does not move). It only ever adds: a default rule that exists keeps
its parameters, and clinic and patient rules are never touched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ingest.alerts.kinds.registry import KindRegistry

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SyncResult:
    kinds_written: int
    defaults_added: int


def sync_kinds(conn: psycopg.Connection[Any], registry: KindRegistry) -> SyncResult:
    """Upsert the registry's kinds, add the default rules that are missing (in one transaction)."""
    for kind in registry:  # a kind with an invalid default is a bug: refuse before writing
        for default in kind.defaults():
            registry.parse(kind.name, default.params)
    with conn.transaction():
        stored = {
            row[0]: tuple(row[1:])
            for row in conn.execute("SELECT name, label, description, scheduled FROM alert_rule_kinds")
        }
        changed = [
            (k.name, k.label, k.description, k.scheduled)
            for k in registry
            if stored.get(k.name) != (k.label, k.description, k.scheduled)
        ]
        if changed:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO alert_rule_kinds (name, label, description, scheduled)"
                    " VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT (name) DO UPDATE SET label = EXCLUDED.label,"
                    " description = EXCLUDED.description, scheduled = EXCLUDED.scheduled, updated_at = now()",
                    changed,
                )
        unknown = sorted(set(stored) - set(registry.names))
        if unknown:
            logger.warning("alert rule kinds in the database but not in this code: %s", ", ".join(unknown))
        existing = {
            row[0]
            for row in conn.execute(
                "SELECT key FROM alert_rules WHERE clinic_id IS NULL AND patient_id IS NULL"
            )
        }
        missing = [(k, d) for k in registry for d in k.defaults() if d.key not in existing]
        if missing:
            conn.execute(
                "INSERT INTO alert_rules (key, kind, metric, enabled, params, description)"
                " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::boolean[], %s::jsonb[],"
                " %s::text[])"
                " ON CONFLICT (key) WHERE clinic_id IS NULL AND patient_id IS NULL DO NOTHING",
                (
                    [d.key for _, d in missing],
                    [k.name for k, _ in missing],
                    [d.metric for _, d in missing],
                    [d.enabled for _, d in missing],
                    [Jsonb(dict(d.params)) for _, d in missing],
                    [d.description for _, d in missing],
                ),
            )
            logger.info(
                "added %d default alert rules: %s", len(missing), ", ".join(d.key for _, d in missing)
            )
    return SyncResult(len(changed), len(missing))

"""Every rule row, held in memory per process and reloaded when the database's version moves.

The version lives in ``alert_config`` and a trigger bumps it on any change of ``alert_rules``.
The engine reads it in the statement that takes a batch's locks, so a batch costs no query for
rules unless they changed since the previous batch (in any process).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg

from ingest.alerts.rulebook import RuleBook, by_level, read_rule_rows
from ingest.alerts.rules import ParamModels, Rule, RuleRow

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuleSnapshot:
    version: int
    defaults: dict[str, RuleRow]
    clinic_rows: dict[tuple[str, str], RuleRow]
    patient_rows: dict[tuple[UUID, str], RuleRow]
    models: ParamModels
    merged: dict[tuple[Any, ...], Rule] = field(default_factory=dict)
    memo: dict[tuple[Any, ...], Any] = field(default_factory=dict)

    def book(self, clinic_of: dict[UUID, str]) -> RuleBook:
        return RuleBook(
            clinic_of=clinic_of,
            defaults=self.defaults,
            clinic_rows=self.clinic_rows,
            patient_rows=self.patient_rows,
            models=self.models,
            cache=self.merged,
            memo=self.memo,
        )


class RuleCache:
    """Thread-safe: hooks run on the HTTP worker threads and the MQTT writer at once."""

    def __init__(self, models: ParamModels) -> None:
        self.models = models
        self._lock = threading.Lock()
        self._snapshot: RuleSnapshot | None = None
        self.loads = 0

    @property
    def latest(self) -> RuleSnapshot | None:
        """The rules loaded last (maybe stale: check its version against the database's)."""
        return self._snapshot

    def snapshot(self, conn: psycopg.Connection[Any], version: int) -> RuleSnapshot:
        snap = self._snapshot
        if snap is not None and snap.version == version:
            return snap
        with self._lock:
            snap = self._snapshot
            if snap is not None and snap.version >= version:
                # A concurrent batch already loaded these (or newer) rules.
                return snap
            snap = self._load(conn, version)
            self._snapshot = snap
            return snap

    def _load(self, conn: psycopg.Connection[Any], version: int) -> RuleSnapshot:
        rows = read_rule_rows(conn)
        defaults, clinic_rows, patient_rows = by_level(rows)
        snap = RuleSnapshot(
            version=version,
            defaults=defaults,
            clinic_rows=clinic_rows,
            patient_rows=patient_rows,
            models=self.models,
        )
        self.loads += 1
        logger.debug("loaded %d alert rule rows (version %d)", len(rows), version)
        return snap

"""What every alert rule kind provides, and what the engine and the scheduler hand to it.

A kind is one object (a :class:`RuleKind` subclass instance): its name, its parameter model, the
words people read about it, its default rule rows, its evaluation of new readings and, if it has
one, its step on the scheduler's tick. The engine and the scheduler only ever call these methods;
they never name a kind.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal, Protocol
from uuid import UUID

import psycopg

from ingest.alerts.evaluate import Decision, Open
from ingest.alerts.history import Group, GroupKey, History, Plan
from ingest.alerts.rulebook import RuleBook
from ingest.alerts.rules import ParamModels, Rule, RuleParams, RuleRow
from ingest.alerts.store import AlertKey, NewAlert
from ingest.alerts.writer import AlertWriter

logger = logging.getLogger(__name__)

Scope = Literal["metric", "device"]

# Devices assigned to a patient at %(now)s: the newest assignment of each device up to then.
CURRENT_ASSIGNMENTS = """
SELECT DISTINCT ON (a.device_id) a.device_id, a.patient_id
FROM device_assignments a WHERE a.since <= %(now)s
ORDER BY a.device_id, a.since DESC
"""


@dataclass(frozen=True, slots=True)
class DefaultRule:
    """One service-wide default rule row a kind brings (written once; never overwritten)."""

    key: str
    enabled: bool
    params: Mapping[str, Any]
    metric: str | None = None
    description: str | None = None


@dataclass
class Measurement:
    """Everything one device measured at one instant (a BP panel, an oximeter spot check)."""

    patient_id: UUID
    device_id: str
    at: datetime
    flags: set[str]
    metrics: list[str]
    battery_level: int | None = None


class ReadingsRun(Protocol):
    """What the engine offers a kind while it evaluates one batch of new readings (inside the
    ingest transaction, under the patients' alert locks)."""

    @property
    def book(self) -> RuleBook: ...

    @property
    def writer(self) -> AlertWriter: ...

    @property
    def groups(self) -> dict[GroupKey, Group]: ...

    @property
    def plan(self) -> Plan: ...

    @property
    def history(self) -> History: ...

    def unit(self, metric: str) -> str:
        """The catalogue's UCUM unit of a metric ('' when unknown)."""
        ...

    def late(self, g: Group, at: datetime) -> bool:
        """Was ``at`` measured before the newest reading of the group stored before this batch?"""
        ...

    def alerted(self, kind: str) -> Collection[GroupKey]:
        """The groups of the batch with an open (or acknowledged) alert of this kind."""
        ...


@dataclass
class TickRun:
    """What the scheduler offers a kind on one tick (one transaction, the tick lock held)."""

    conn: psycopg.Connection[Any]
    writer: AlertWriter
    now: datetime
    models: ParamModels


class RuleKind(ABC):
    """One kind of alert rule. Subclasses set the class attributes and override the hooks that
    apply: a ``metric`` kind ``select`` + ``on_group``, a ``device`` kind ``on_measurement``;
    a kind with time-driven alerts also ``tick``."""

    name: ClassVar[str]  # stored in alert_rules.kind and alerts.kind
    # Where the kind comes in the registry's order: the order of evaluation, and so of the alert
    # events a batch writes (lowest first; unique among the service's kinds).
    order: ClassVar[int]
    params: ClassVar[type[RuleParams]]
    scope: ClassVar[Scope]  # what an alert is about: a patient's metric, or one of their devices
    label: ClassVar[str]  # short, for people: "out of range"
    description: ClassVar[str]  # one sentence, for people
    title: ClassVar[str] = "{metric}{value} \u2014 {label}"  # an alert's title without a message
    tick_counts: ClassVar[tuple[str, ...]] = ()  # the counters ``tick`` reports

    @abstractmethod
    def defaults(self) -> Sequence[DefaultRule]:
        """The service-wide default rules of this kind (seeded when missing)."""

    # ------------------------------------------------------------------ on new readings

    def select(self, run: ReadingsRun) -> Collection[GroupKey]:
        """The groups of the batch this kind has something to decide for (cheap: hot path)."""
        return ()

    def on_group(self, run: ReadingsRun, gkey: GroupKey, g: Group) -> None:
        """Decide for the new readings of one patient's metric (a group ``select`` chose)."""
        return None

    def on_measurement(self, run: ReadingsRun, m: Measurement) -> None:
        """Decide for one device measurement (all readings a device took at one time)."""
        return None

    # ------------------------------------------------------------------ on the scheduler's tick

    def tick(self, run: TickRun) -> dict[str, int]:
        """Open or resolve time-driven alerts; the counts named in ``tick_counts``."""
        return {}

    @property
    def scheduled(self) -> bool:
        return type(self).tick is not RuleKind.tick

    @property
    def evaluates_readings(self) -> bool:
        cls = type(self)
        if self.scope == "metric":
            return cls.select is not RuleKind.select and cls.on_group is not RuleKind.on_group
        return cls.on_measurement is not RuleKind.on_measurement

    # ------------------------------------------------------------------ configuration

    def after_patient_override(self, conn: psycopg.Connection[Any], patient_id: UUID, base: RuleRow) -> None:
        """Called when a patient override of a rule of this kind was written (same transaction)."""
        return None


def opened(
    d: Open,
    patient_id: UUID,
    rule: Rule,
    subject: str,
    message: str,
    device_id: str,
    *,
    unit: str | None = None,
    late: bool | None = None,
) -> NewAlert:
    """The alert an ``Open`` decision opens; ``late`` (when the rule tells) is also kept in details."""
    return NewAlert(
        patient_id=patient_id,
        rule=rule,
        subject=subject,
        severity=d.severity,
        message=message,
        onset_at=d.onset_at,
        latest_at=d.latest_at,
        value=d.value,
        last_value=d.last_value,
        unit=unit,
        device_id=device_id,
        late=bool(late),
        details=d.details if late is None else {**d.details, "late": late},
    )


def apply_flags(
    run: ReadingsRun, m: Measurement, rule: Rule, key: AlertKey, decision: Decision, verb: str
) -> None:
    """Apply a decision on flags; an alert opened by a late measurement is marked late."""
    if decision is None:
        return
    late = isinstance(decision, Open) and any(
        run.late(run.groups[(m.patient_id.int, metric)], m.at) for metric in m.metrics
    )

    def new_alert(d: Open) -> NewAlert:
        message = f"device {m.device_id} {verb} {', '.join(d.details.get('flags', []))}"
        return opened(d, m.patient_id, rule, m.device_id, message, m.device_id, late=late)

    run.writer.apply(
        key,
        decision,
        new_alert=new_alert,
        raised_message=lambda _severity: f"device {m.device_id} {verb}",
        late=late,
        clear_note="device no longer reports it",
        latch=rule.params.latch,
    )

"""The kinds of alert rules, and the registry that lists them.

Every kind is one object (:class:`~ingest.alerts.kinds.base.RuleKind`) carrying everything about
it: its name, its parameter model (pydantic), its label and description for people, its default
rule rows, its evaluation of new readings (inside the ingest transaction) and, if it has one, its
step on the scheduler's tick. The engine, the scheduler, the API (which kinds exist, which
parameters are valid, ``GET /v1/alert-rule-kinds`` for the dashboard) and the database (the
``alert_rule_kinds`` table and the default rules, written by :mod:`ingest.alerts.kinds.sync` at
migrate and at start-up) all read the registry; none of them names a kind.

How to add a kind
-----------------
1. Write ``ingest/alerts/kinds/<kind>.py``: a parameter model (a subclass of
   :class:`~ingest.alerts.rules.RuleParams`) and a subclass of ``RuleKind`` setting ``name``,
   ``params``, ``scope`` (``"metric"``: about a patient's metric; ``"device"``: about one of their
   devices), ``label`` and ``description``, with

   - ``defaults()``: the service-wide default rules (keys ``<prefix>:<metric or name>``); they are
     inserted when missing and never overwrite a row that exists;
   - for a metric kind, ``select(run)`` (the groups of the batch it has work for: keep it cheap, it
     runs for every batch) and ``on_group(run, gkey, group)``; for a device kind,
     ``on_measurement(run, measurement)``. Decide with the pure helpers of
     :mod:`ingest.alerts.evaluate` and write through ``run.writer``;
   - if alerts of the kind open or close with time rather than readings, ``tick(run)`` returning
     the counters named in ``tick_counts``.

2. Add an instance to ``KINDS`` below (the order is the order of evaluation).
3. Tests: ``tests/ingest/alerts/test_<kind>.py``; ``tests/ingest/alerts/test_kinds.py`` checks the
   registry's consistency (every kind complete, the database knows it) for every kind at once.

No SQL migration, no API route and no dashboard change is needed: the API validates rule kinds
and parameters with the registry, the dashboard reads the kinds' labels from the API.

A kind that needs stored readings around the new ones (beyond the batch) shares the history
planner of :mod:`ingest.alerts.history`, which fetches them in the batch's first round trip;
today that serves ``threshold`` (debounce runs) and ``rate_of_change`` (windows).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from ingest.alerts.kinds.base import RuleKind
from ingest.alerts.kinds.device_status import DeviceStatusKind
from ingest.alerts.kinds.low_battery import LowBatteryKind
from ingest.alerts.kinds.missing_data import MissingDataKind
from ingest.alerts.kinds.rate_of_change import RateOfChangeKind
from ingest.alerts.kinds.registry import KindRegistry
from ingest.alerts.kinds.threshold import ThresholdKind
from ingest.alerts.rules import Rule, RuleParams, RuleRow

__all__ = ["KINDS", "REGISTRY", "KindRegistry", "RuleKind", "merge", "parse_params"]

KINDS: Final[tuple[RuleKind, ...]] = (
    ThresholdKind(),
    RateOfChangeKind(),
    MissingDataKind(),
    DeviceStatusKind(),
    LowBatteryKind(),
)

REGISTRY: Final = KindRegistry(KINDS)  # the service's kinds; a test may build a registry of its own


def parse_params(kind: str, raw: Mapping[str, Any]) -> RuleParams:
    """Validate a rule's parameters with the service's registry (:class:`InvalidRule` if not)."""
    return REGISTRY.parse(kind, raw)


def merge(layers: Iterable[RuleRow]) -> Rule:
    """Merge default -> clinic -> patient rule rows with the service's registry."""
    return REGISTRY.merge(layers)

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
1. Write ``ingest/alerts/kinds/<kind>.py``. The registry finds it there by itself: every module of
   this package but ``base``, ``registry`` and ``sync`` is a kind module, imported at start-up,
   and must define ``KIND``, an instance of its kind (a module without one stops the import with
   an error naming it). Everything about the kind lives in its module: its parameter model (a
   subclass of :class:`~ingest.alerts.rules.RuleParams`), its pure decision (no I/O, no clock),
   and a subclass of ``RuleKind`` setting ``name``, ``order`` (its place in the order of
   evaluation, which is also the order of the alert events a batch writes: unique, lowest
   first; today 10, 20, ... 50), ``params``, ``scope`` (``"metric"``: about a patient's metric;
   ``"device"``: about one of their devices), ``label`` and ``description``, with

   - ``defaults()``: the service-wide default rules (keys ``<prefix>:<metric or name>``); they are
     inserted when missing and never overwrite a row that exists;
   - for a metric kind, ``select(run)`` (the groups of the batch it has work for: keep it cheap, it
     runs for every batch) and ``on_group(run, gkey, group)``; for a device kind,
     ``on_measurement(run, measurement)``. Decide with the kind's own pure functions and the
     shared helpers of :mod:`ingest.alerts.evaluate`, and write through ``run.writer``;
   - if alerts of the kind open or close with time rather than readings, ``tick(run)`` returning
     the counters named in ``tick_counts``.

   A kind module imports only what kinds build on (``base``, :mod:`ingest.alerts.history`'s
   groups, the rules, the store and the writer), never the engine or the history planner: the
   registry imports every kind module when this package is first imported.
2. Tests: ``tests/ingest/alerts/test_<kind>.py``; ``tests/ingest/alerts/test_kinds.py`` checks the
   registry's consistency (every module of this package a kind, every kind complete, the database
   knows it) for every kind at once.

No SQL migration, no API route and no dashboard change is needed: the API validates rule kinds
and parameters with the registry, the dashboard reads the kinds' labels from the API.

A kind that needs stored readings around the new ones (beyond the batch) shares the history
planner of :mod:`ingest.alerts.planner`, which fetches them in the batch's first round trip;
today that serves ``threshold`` (debounce runs) and ``rate_of_change`` (windows), and reads their
parameters from their modules.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Mapping
from typing import Any, Final

from ingest.alerts.kinds.base import RuleKind
from ingest.alerts.kinds.registry import KindRegistry
from ingest.alerts.rules import Rule, RuleParams, RuleRow

__all__ = ["KINDS", "MACHINERY", "REGISTRY", "KindRegistry", "RuleKind", "discover", "merge", "parse_params"]

MACHINERY: Final = frozenset({"base", "registry", "sync"})  # the modules of this package that are no kind


def discover(package: str, path: Iterable[str]) -> tuple[RuleKind, ...]:
    """The ``KIND`` of every kind module of a package (every module but :data:`MACHINERY`), in
    evaluation order (``RuleKind.order``). A module without a ``KIND``, or a kind without an
    ``order`` or with one another kind has, is an :class:`ImportError` naming the module."""
    found: dict[str, RuleKind] = {}
    for info in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
        if info.name in MACHINERY:
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        kind = getattr(module, "KIND", None)
        if not isinstance(kind, RuleKind):
            raise ImportError(
                f"{module.__name__} is in the rule kinds package but defines no KIND (an instance of"
                f" its RuleKind subclass; got {kind!r}): define one, or move the module elsewhere"
            )
        order = getattr(type(kind), "order", None)
        if type(order) is not int:
            raise ImportError(f"{module.__name__}: the rule kind {kind.name!r} sets no int order")
        twin = next((m for m, k in found.items() if k.order == order), None)
        if twin is not None:
            raise ImportError(f"{module.__name__} and {twin}: two rule kinds of order {order}")
        found[module.__name__] = kind
    return tuple(sorted(found.values(), key=lambda k: k.order))


KINDS: Final[tuple[RuleKind, ...]] = discover(__name__, __path__)  # in evaluation order

REGISTRY: Final = KindRegistry(KINDS)  # the service's kinds; a test may build a registry of its own


def parse_params(kind: str, raw: Mapping[str, Any]) -> RuleParams:
    """Validate a rule's parameters with the service's registry (:class:`InvalidRule` if not)."""
    return REGISTRY.parse(kind, raw)


def merge(layers: Iterable[RuleRow]) -> Rule:
    """Merge default -> clinic -> patient rule rows with the service's registry."""
    return REGISTRY.merge(layers)

"""The registry: the rule kinds one service runs with, looked up by name."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from ingest.alerts.kinds.base import RuleKind
from ingest.alerts.rules import ParamModels, Rule, RuleParams, RuleRow, merge, parse_params
from ingest.errors import InvalidRule

NAME: Final = re.compile(r"^[a-z][a-z0-9_]{0,63}$")  # as alert_rule_kinds.name allows


class KindRegistry:
    """Rule kinds by name, in the order they are evaluated (that order is also the order of the
    alert events a batch writes, so keep it stable)."""

    def __init__(self, kinds: Iterable[RuleKind]) -> None:
        self._kinds: dict[str, RuleKind] = {}
        for kind in kinds:
            if not NAME.match(kind.name):
                raise ValueError(f"rule kind name {kind.name!r} is not lower_snake_case (<= 64)")
            if kind.name in self._kinds:
                raise ValueError(f"two rule kinds are named {kind.name!r}")
            if kind.scope not in ("metric", "device"):
                raise ValueError(f"rule kind {kind.name!r} has an unknown scope {kind.scope!r}")
            self._kinds[kind.name] = kind
        self.models: ParamModels = {name: kind.params for name, kind in self._kinds.items()}
        self.metric_kinds: tuple[RuleKind, ...] = tuple(k for k in self if k.scope == "metric")
        self.device_kinds: tuple[RuleKind, ...] = tuple(k for k in self if k.scope == "device")
        self.device_kind_names: frozenset[str] = frozenset(k.name for k in self.device_kinds)
        self.scheduled: tuple[RuleKind, ...] = tuple(k for k in self if k.scheduled)

    def __iter__(self) -> Iterator[RuleKind]:
        return iter(self._kinds.values())

    def __len__(self) -> int:
        return len(self._kinds)

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __getitem__(self, name: str) -> RuleKind:
        """The kind; :class:`InvalidRule` (an API caller's 422) when there is none of that name."""
        found = self._kinds.get(name)
        if found is None:
            raise InvalidRule(f"unknown rule kind {name!r}")
        return found

    def get(self, name: str) -> RuleKind | None:
        return self._kinds.get(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._kinds)

    def with_kinds(self, *extra: RuleKind) -> KindRegistry:
        """A new registry: these kinds and the extra ones after them."""
        return KindRegistry([*self, *extra])

    def parse(self, kind: str, raw: Mapping[str, Any]) -> RuleParams:
        """Validate parameters of a kind; :class:`InvalidRule` with a readable reason."""
        return parse_params(kind, raw, self.models)

    def merge(self, layers: Iterable[RuleRow]) -> Rule:
        return merge(layers, self.models)

"""Rules: their parameters (validated), and the merge of defaults with overrides.

A rule is identified by its key. Its service-wide default row fixes the kind and the metric; a
clinic row and then a patient row may override single parameters and ``enabled``. The effective
rule for a patient is the merge of the three, validated as a whole against the parameter model of
its kind. The kinds themselves (each with its parameter model, a subclass of :class:`RuleParams`)
are listed by the registry in :mod:`ingest.alerts.kinds`; here are only the pieces they share.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ingest.errors import InvalidRule

logger = logging.getLogger(__name__)

Severity = Literal["warning", "critical"]
Source = Literal["default", "clinic", "patient"]
SEVERITY_RANK: Final[dict[str, int]] = {"warning": 1, "critical": 2}
MAX_DAYS: Final = 90 * 86400

Number = Annotated[float, Field(allow_inf_nan=False, ge=-1e6, le=1e6)]
Margin = Annotated[float, Field(allow_inf_nan=False, ge=0, le=1e6)]
Flag = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$")]


def higher(a: Severity, b: Severity) -> Severity:
    return a if SEVERITY_RANK[a] >= SEVERITY_RANK[b] else b


class RuleParams(BaseModel):
    """The base of every kind's parameter model: unknown fields refused, values not coerced."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    # Does an alert of this rule stay open, marked cleared, when its condition clears before anyone
    # acknowledged it (until it is acknowledged or resolved by hand)? Unset: it does when the alert
    # is critical at that moment, a warning resolves by itself. Every kind has it.
    latch: bool | None = None


ParamModels = Mapping[str, type[RuleParams]]  # kind name -> its parameter model


def parse_params(kind: str, raw: Mapping[str, Any], models: ParamModels) -> RuleParams:
    """Validate a rule's merged parameters with the model of its kind; raise :class:`InvalidRule`
    with a readable reason (also for a kind ``models`` does not know)."""
    model = models.get(kind)
    if model is None:
        raise InvalidRule(f"unknown rule kind {kind!r}")
    try:
        return model.model_validate(dict(raw))
    except ValidationError as exc:
        raise InvalidRule(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)[:500]


@dataclass(frozen=True, slots=True)
class RuleRow:
    """One stored rule row (default, clinic or patient level)."""

    id: int
    key: str
    kind: str
    metric: str | None
    clinic_id: str | None
    patient_id: UUID | None
    enabled: bool | None
    params: Mapping[str, Any]

    @property
    def source(self) -> Source:
        if self.patient_id is not None:
            return "patient"
        return "clinic" if self.clinic_id is not None else "default"


@dataclass(frozen=True, slots=True)
class Rule:
    """The effective rule for one patient (or clinic)."""

    id: int
    key: str
    kind: str
    metric: str | None
    enabled: bool
    params: RuleParams
    source: Source


def merge(layers: Iterable[RuleRow], models: ParamModels) -> Rule:
    """Merge default -> clinic -> patient rows (in that order) into one effective rule.

    An override that no longer validates against the layers below it (e.g. a default changed
    since) is skipped with a warning rather than disabling the rule.
    """
    rows = list(layers)
    base = rows[0]
    assert base.source == "default"
    params: dict[str, Any] = dict(base.params)
    enabled = bool(base.enabled)
    parsed = parse_params(base.kind, params, models)
    chosen = base
    for row in rows[1:]:
        candidate = {**params, **row.params}
        try:
            parsed = parse_params(base.kind, candidate, models)
        except InvalidRule as exc:
            logger.warning("rule %s: %s override %d ignored: %s", base.key, row.source, row.id, exc)
            continue
        params = candidate
        if row.enabled is not None:
            enabled = row.enabled
        chosen = row
    return Rule(
        id=chosen.id,
        key=base.key,
        kind=base.kind,
        metric=base.metric,
        enabled=enabled,
        params=parsed,
        source=chosen.source,
    )

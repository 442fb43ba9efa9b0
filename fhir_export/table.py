"""The mapping table: metric name -> everything needed to code its Observation.

Built once at start-up from the metric catalogue (``devices.catalogue``: LOINC, UCUM, display)
and the FHIR rules (:mod:`fhir_export.profiles`); any inconsistency is a
:class:`~fhir_export.errors.ConfigurationError`, so a wrong code or unit never reaches an EHR.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from devices.catalogue import Metric, load_catalogue
from fhir_export.errors import ConfigurationError
from fhir_export.profiles import (
    BP_PANEL_CODE,
    DIASTOLIC_CODE,
    RULES,
    SYSTOLIC_CODE,
    LoincRule,
)

LOINC_CODE_RE: Final = re.compile(r"^\d{1,7}-\d$")
UCUM_CODE_RE: Final = re.compile(r"^[!-~]{1,32}$")  # printable ASCII, no spaces


@dataclass(frozen=True, slots=True)
class MetricCoding:
    """How one metric is coded in FHIR."""

    metric: str
    loinc: str
    display: str
    ucum: str
    category: str
    profile: str | None
    extra_codes: tuple[tuple[str, str], ...]
    bp_component: bool
    mdc: tuple[str, str] | None = None  # IEEE 11073-10101 (code, reference id): the PHD profile's


@dataclass(frozen=True, slots=True)
class MappingTable:
    metrics: Mapping[str, MetricCoding]

    def get(self, metric: str) -> MetricCoding | None:
        return self.metrics.get(metric)


def _loinc_check_digit_ok(code: str) -> bool:
    """LOINC's mod-10 check digit (the digit after the hyphen)."""
    body, check = code.split("-")
    digits = [int(d) for d in body]
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2 == 0:
            doubled = digit * 2
            total += doubled // 10 + doubled % 10
        else:
            total += digit
    return (10 - total % 10) % 10 == int(check)


def _coding(metric: Metric, rules: Mapping[str, LoincRule]) -> MetricCoding:
    name = metric.name
    if not LOINC_CODE_RE.match(metric.loinc) or not _loinc_check_digit_ok(metric.loinc):
        raise ConfigurationError(f"metric {name!r}: {metric.loinc!r} is not a valid LOINC code")
    if not UCUM_CODE_RE.match(metric.ucum_unit):
        raise ConfigurationError(f"metric {name!r}: {metric.ucum_unit!r} is not a UCUM code")
    if not metric.loinc_display.strip():
        raise ConfigurationError(f"metric {name!r}: LOINC display is empty")
    rule = rules.get(metric.loinc)
    if rule is None:
        raise ConfigurationError(
            f"metric {name!r}: LOINC {metric.loinc} has no FHIR rule (add it to profiles.RULES)"
        )
    if metric.ucum_unit not in rule.units:
        raise ConfigurationError(
            f"metric {name!r}: unit {metric.ucum_unit!r} is not allowed for LOINC {metric.loinc}"
            f" (allowed: {', '.join(sorted(rule.units))})"
        )
    if rule.bp_component != metric.is_bp_component:
        raise ConfigurationError(
            f"metric {name!r}: LOINC {metric.loinc} and the blood-pressure panel disagree"
        )
    return MetricCoding(
        metric=name,
        loinc=metric.loinc,
        display=metric.loinc_display,
        ucum=metric.ucum_unit,
        category=rule.category,
        profile=rule.profile,
        extra_codes=rule.extra_codes,
        bp_component=rule.bp_component,
        mdc=None if metric.mdc is None else (metric.mdc.code, metric.mdc.refid),
    )


def build_table(
    catalogue: Mapping[str, Metric] | None = None,
    rules: Mapping[str, LoincRule] = RULES,
) -> MappingTable:
    """Join the catalogue with the FHIR rules, refusing any inconsistency."""
    source = load_catalogue() if catalogue is None else catalogue
    metrics = {name: _coding(metric, rules) for name, metric in source.items()}
    seen: dict[str, str] = {}
    for coding in metrics.values():
        if coding.loinc in seen:
            raise ConfigurationError(
                f"metrics {seen[coding.loinc]!r} and {coding.metric!r} share LOINC {coding.loinc}"
            )
        seen[coding.loinc] = coding.metric
    if BP_PANEL_CODE in seen:
        raise ConfigurationError(f"the panel code {BP_PANEL_CODE} cannot be a metric of its own")
    components = {c.loinc for c in metrics.values() if c.bp_component}
    if components and not {SYSTOLIC_CODE, DIASTOLIC_CODE} <= components:
        raise ConfigurationError("blood-pressure panel needs both systolic and diastolic metrics")
    return MappingTable(metrics=metrics)

"""How each metric is coded in OBX-3 / OBR-4: the MDC code first, the LOINC code as the alternate.

Read from the metric catalogue (``devices/data/metrics.csv`` for LOINC and UCUM,
``devices/data/mdc.csv`` for IEEE 11073-10101), built once at start-up and then only looked up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from devices.catalogue import Metric
from hl7_export.errors import MappingError


@dataclass(frozen=True, slots=True)
class Coding:
    """A CWE value: identifier^text^system, then the alternate identifier^text^system."""

    code: str
    text: str
    system: str
    alt_code: str = ""
    alt_text: str = ""
    alt_system: str = ""


@dataclass(frozen=True, slots=True)
class MetricCodes:
    metric: str
    coding: Coding
    ucum_unit: str


# The non-invasive blood pressure panel: MDC_PRESS_BLD_NONINV (IEEE 11073-10101 partition 2,
# term 18948; NIST RTMMS) with LOINC 85354-9, the panel the FHIR export uses too.
BP_PANEL: Final = Coding(
    "150020", "MDC_PRESS_BLD_NONINV", "MDC",
    "85354-9", "Blood pressure panel with all children optional", "LN",
)  # fmt: skip


def build_codes(catalogue: Mapping[str, Metric]) -> dict[str, MetricCodes]:
    """Every catalogue metric's coding: MDC primary with LOINC alternate, or LOINC alone when the
    metric has no MDC code."""
    table: dict[str, MetricCodes] = {}
    for name, metric in catalogue.items():
        if not metric.loinc or not metric.ucum_unit:
            raise MappingError(f"metric {name!r} has no LOINC code or unit")
        if metric.mdc is None:
            coding = Coding(metric.loinc, metric.loinc_display, "LN")
        else:
            coding = Coding(
                metric.mdc.code, metric.mdc.refid, "MDC", metric.loinc, metric.loinc_display, "LN"
            )
        table[name] = MetricCodes(name, coding, metric.ucum_unit)
    return table

"""The metric catalogue: names, canonical UCUM units, LOINC and MDC codes and plausible ranges.

It is data (``data/metrics.csv``, the content of the service contract, and ``data/mdc.csv``, the
IEEE 11073-10101 code of each metric kept beside it so the contract file stays unchanged), loaded
and validated once.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources

from devices.errors import CatalogueError


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    ucum_unit: str
    loinc: str
    loinc_display: str
    fhir_shape: str
    plausible_min: float
    plausible_max: float
    notes: str
    mdc: MdcCode | None = None  # IEEE 11073-10101 code (HL7 v2 OBX-3); None when it has none

    @property
    def is_bp_component(self) -> bool:
        return self.name in BP_COMPONENTS

    def is_plausible(self, value: float) -> bool:
        return self.plausible_min <= value <= self.plausible_max


@dataclass(frozen=True, slots=True)
class MdcCode:
    """An IEEE 11073-10101 (MDC) term: the context-free code and its reference id."""

    code: str  # partition * 65536 + term code, as decimal text ("150021")
    refid: str  # "MDC_PRESS_BLD_NONINV_SYS"


BP_COMPONENTS = ("systolic_bp", "diastolic_bp", "mean_arterial_pressure")
_COLUMNS = (
    "metric",
    "ucum_unit",
    "loinc",
    "loinc_display",
    "fhir_shape",
    "plausible_min",
    "plausible_max",
    "notes",
)


def parse_catalogue(text: str) -> dict[str, Metric]:
    """Parse catalogue CSV text; raise :class:`CatalogueError` on any inconsistency."""
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != _COLUMNS:
        raise CatalogueError(f"metrics catalogue columns are {reader.fieldnames}, want {_COLUMNS}")
    metrics: dict[str, Metric] = {}
    for row in reader:
        try:
            low, high = float(row["plausible_min"]), float(row["plausible_max"])
        except ValueError as exc:
            raise CatalogueError(f"metric {row['metric']!r}: bad plausible range") from exc
        if not low < high:
            raise CatalogueError(f"metric {row['metric']!r}: plausible_min >= plausible_max")
        if not row["metric"] or not row["ucum_unit"] or not row["loinc"]:
            raise CatalogueError(f"incomplete catalogue row: {row}")
        if row["metric"] in metrics:
            raise CatalogueError(f"metric {row['metric']!r} listed twice")
        metrics[row["metric"]] = Metric(
            name=row["metric"],
            ucum_unit=row["ucum_unit"],
            loinc=row["loinc"],
            loinc_display=row["loinc_display"],
            fhir_shape=row["fhir_shape"],
            plausible_min=low,
            plausible_max=high,
            notes=row["notes"] or "",
        )
    if not metrics:
        raise CatalogueError("metrics catalogue is empty")
    return metrics


_MDC_COLUMNS = ("metric", "mdc_code", "mdc_refid", "source")


def parse_mdc(text: str, metrics: dict[str, Metric]) -> dict[str, Metric]:
    """The catalogue with each metric's MDC code from ``mdc.csv`` text: one row per catalogue
    metric (empty code for a metric without one), each citing where its code comes from."""
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != _MDC_COLUMNS:
        raise CatalogueError(f"MDC table columns are {reader.fieldnames}, want {_MDC_COLUMNS}")
    codes: dict[str, MdcCode | None] = {}
    for row in reader:
        name, code, refid = row["metric"], row["mdc_code"] or "", row["mdc_refid"] or ""
        if name not in metrics or name in codes:
            raise CatalogueError(f"MDC table: {name!r} is unknown or listed twice")
        if not row["source"]:
            raise CatalogueError(f"MDC table: {name!r} cites no source")
        if bool(code) != bool(refid) or (code and (not code.isdigit() or not refid.startswith("MDC_"))):
            raise CatalogueError(f"MDC table: bad code for {name!r}")
        codes[name] = MdcCode(code, refid) if code else None
    if set(codes) != set(metrics):
        raise CatalogueError(f"MDC table lacks {sorted(set(metrics) - set(codes))}")
    return {name: replace(metric, mdc=codes[name]) for name, metric in metrics.items()}


@cache
def load_catalogue() -> dict[str, Metric]:
    """The packaged catalogue with its MDC codes (cached; the mapping must not be mutated)."""
    data = resources.files("devices").joinpath("data")
    metrics = parse_catalogue(data.joinpath("metrics.csv").read_text(encoding="utf-8"))
    return parse_mdc(data.joinpath("mdc.csv").read_text(encoding="utf-8"), metrics)

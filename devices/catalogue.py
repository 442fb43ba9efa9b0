"""The metric catalogue: names, canonical UCUM units, LOINC codes and plausible ranges.

It is data (``data/metrics.csv``, the content of the service contract), loaded and validated once.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
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

    @property
    def is_bp_component(self) -> bool:
        return self.name in BP_COMPONENTS

    def is_plausible(self, value: float) -> bool:
        return self.plausible_min <= value <= self.plausible_max


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


@cache
def load_catalogue() -> dict[str, Metric]:
    """The packaged catalogue (cached; the mapping must not be mutated)."""
    text = resources.files("devices").joinpath("data/metrics.csv").read_text(encoding="utf-8")
    return parse_catalogue(text)

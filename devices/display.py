"""How a person reads a metric: its label, short label, display unit and number of digits.

Data (``data/display.csv``, next to the metric catalogue) loaded and checked once; its rows are in
the order people see the metrics. UCUM codes stay in stored data, FHIR and HL7 (``mm[Hg]``,
``Cel``, ``/min``); everything a person reads (alert messages, webhooks, the dashboard, which is
served this table) says ``mmHg``, ``°C``, ``bpm`` through it.

Also here: the one rule for how long ago something was (:func:`age_text`), which the dashboard
repeats in JavaScript against the same table of cases.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

from devices.catalogue import Metric, load_catalogue
from devices.errors import CatalogueError


@dataclass(frozen=True, slots=True)
class Display:
    metric: str
    label: str
    short: str
    unit: str  # the display unit, e.g. "mmHg"
    digits: int  # decimals shown

    def number(self, value: float) -> str:
        """``value`` with the metric's decimals (``179``, ``38.2``)."""
        return f"{value:.{self.digits}f}"

    def quantity(self, value: float) -> str:
        """``value`` with its display unit (``179 mmHg``, ``38.2 °C``, ``94 %``)."""
        return f"{self.number(value)} {self.unit}" if self.unit else self.number(value)

    def exact(self, value: float) -> str:
        """``value`` with the metric's decimals, or as many as it needs when those would round it
        (alert messages state the reading that fired: ``38.0``, ``121.6``, never a rounded one)."""
        text = self.number(value)
        return text if float(text) == value else f"{value:g}"


def parse_display(text: str, catalogue: Mapping[str, Metric]) -> dict[str, Display]:
    """Parse and check the table: exactly one row per catalogue metric, sane digits."""
    table: dict[str, Display] = {}
    for row in csv.DictReader(io.StringIO(text)):
        name = row["metric"]
        if name not in catalogue:
            raise CatalogueError(f"display table: {name!r} is not in the metric catalogue")
        if name in table:
            raise CatalogueError(f"display table: {name!r} appears twice")
        digits = int(row["digits"])
        if not 0 <= digits <= 3 or not row["label"] or not row["display_unit"]:
            raise CatalogueError(f"display table: bad row for {name!r}")
        table[name] = Display(name, row["label"], row["short"], row["display_unit"], digits)
    missing = set(catalogue) - set(table)
    if missing:
        raise CatalogueError(f"display table: no row for {', '.join(sorted(missing))}")
    return table


@cache
def load_display() -> Mapping[str, Display]:
    """The packaged display table (cached; checked against the packaged catalogue)."""
    text = resources.files("devices").joinpath("data/display.csv").read_text(encoding="utf-8")
    return parse_display(text, load_catalogue())


def display_of(metric: str) -> Display:
    """The display entry of ``metric``; an unknown metric reads as its name, without a unit."""
    found = load_display().get(metric)
    return found if found is not None else Display(metric, metric.replace("_", " "), metric, "", 1)


@cache
def unit_names() -> Mapping[str, str]:
    """UCUM code -> display unit, for the codes every metric stored in them reads the same way
    (``mm[Hg]`` -> ``mmHg``, ``Cel`` -> ``°C``; not ``/min``, which is bpm or breaths/min)."""
    seen: dict[str, set[str]] = {}
    for name, metric in load_catalogue().items():
        seen.setdefault(metric.ucum_unit, set()).add(load_display()[name].unit)
    return {code: next(iter(units)) for code, units in seen.items() if len(units) == 1}


def display_unit(metric: str | None, ucum: str | None) -> str | None:
    """What a person reads for a value of ``metric`` stored in ``ucum`` (``mm[Hg]`` -> ``mmHg``).
    Without a catalogue metric (a blood-pressure pair, a battery level in ``%``) the unit the
    code reads as (:func:`unit_names`), else the stored unit as it is."""
    if metric is not None and metric in load_display():
        return load_display()[metric].unit
    if ucum is None:
        return None
    return unit_names().get(ucum, ucum)


def age_text(seconds: float) -> str:
    """How long ago (or how long without data), for people: ``under 1 min``, ``5 min``, ``3 h``,
    ``4 d``. The one rule, in words in docs/alerts.md: minutes below an hour, hours below two days,
    days from then on, each rounded **up** so that data never reads fresher than it is (3 d 1 h
    reads ``4 d``). The dashboard's ``ageText`` (format.js) is the same rule; both are tested
    against tests/support/age_cases.json."""
    if seconds < 60:
        return "under 1 min"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours = math.ceil(seconds / 3600)
    if hours < 48:
        return f"{hours} h"
    return f"{math.ceil(seconds / 86400)} d"

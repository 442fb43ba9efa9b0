"""The display table: what a person reads for each metric (UCUM codes stay in data)."""

from __future__ import annotations

import json

import pytest

from devices.catalogue import load_catalogue
from devices.display import age_text, display_of, display_unit, load_display, parse_display
from devices.errors import CatalogueError
from tests.support.paths import AGE_CASES

HEADER = "metric,label,short,display_unit,digits\n"


def test_every_catalogue_metric_has_a_display_row() -> None:
    assert set(load_display()) == set(load_catalogue())


def test_display_units_are_what_clinicians_read() -> None:
    # Literal table: pins what people read, independently of the CSV it checks.
    assert {m: d.unit for m, d in load_display().items()} == {
        "heart_rate": "bpm",
        "respiratory_rate": "breaths/min",
        "spo2": "%",
        "body_temperature": "°C",
        "systolic_bp": "mmHg",
        "diastolic_bp": "mmHg",
        "mean_arterial_pressure": "mmHg",
        "body_weight": "kg",
        "blood_glucose": "mg/dL",
        "steps": "steps",
    }


@pytest.mark.parametrize(
    ("metric", "value", "text"),
    [
        ("systolic_bp", 185.0, "185 mmHg"),
        ("body_temperature", 38.24, "38.2 °C"),
        ("spo2", 85.0, "85 %"),
        ("heart_rate", 121.6, "122 bpm"),
        ("body_weight", 81.25, "81.2 kg"),
        ("blood_glucose", 54.0, "54 mg/dL"),
    ],
)
def test_quantities_read_with_display_units(metric: str, value: float, text: str) -> None:
    assert display_of(metric).quantity(value) == text


def test_an_unknown_metric_reads_as_its_name() -> None:
    shown = display_of("peak_flow")
    assert (shown.label, shown.unit, shown.number(3.14159)) == ("peak flow", "", "3.1")


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ("nonsense,X,X,x,0\n", "not in the metric catalogue"),
        ("heart_rate,Heart rate,HR,bpm,0\nheart_rate,Heart rate,HR,bpm,0\n", "appears twice"),
        ("heart_rate,Heart rate,HR,bpm,9\n", "bad row"),
        ("heart_rate,Heart rate,HR,bpm,0\n", "no row for"),
    ],
)
def test_an_inconsistent_table_is_refused(rows: str, problem: str) -> None:
    with pytest.raises(CatalogueError, match=problem):
        parse_display(HEADER + rows, load_catalogue())


def _age_cases() -> list[tuple[float, str]]:
    cases = json.loads(AGE_CASES.read_text(encoding="utf-8"))["cases"]
    return [(c["seconds"], c["age"]) for c in cases]


@pytest.mark.parametrize(("seconds", "text"), _age_cases())
def test_ages_follow_the_one_rule(seconds: float, text: str) -> None:
    # The same table the dashboard's format.js is checked against (tests/e2e/test_readable_values.py).
    assert age_text(seconds) == text


def test_an_age_never_reads_fresher_than_it_is() -> None:
    units = {"min": 60, "h": 3600, "d": 86400}
    for seconds in range(60, 40 * 86400, 577):
        number, unit = age_text(seconds).split()
        assert int(number) * units[unit] >= seconds


def test_exact_keeps_the_reading_that_fired() -> None:
    temp = display_of("body_temperature")
    assert (temp.exact(38.0), temp.exact(38.24)) == ("38.0", "38.24")
    assert display_of("heart_rate").exact(121.6) == "121.6"


def test_display_units_of_alert_values() -> None:
    assert display_unit("systolic_bp", "mm[Hg]") == "mmHg"
    assert display_unit("body_temperature", "Cel") == "°C"
    assert display_unit(None, "%") == "%"  # a battery level: no metric


def test_ucum_codes_read_as_display_units_without_a_metric() -> None:
    assert display_unit("blood_pressure", "mm[Hg]") == "mmHg"  # a pair of metrics, one alert
    assert display_unit(None, "Cel") == "°C"
    assert display_unit(None, "/min") == "/min"  # bpm or breaths/min: left as it is

"""The metric catalogue against the contract, and unit conversion."""

from __future__ import annotations

import csv

import pytest

from devices.catalogue import load_catalogue, parse_catalogue
from devices.errors import CatalogueError, InvalidReading
from devices.units import CONVERSIONS, to_canonical
from tests.support.paths import CONTRACT_DIR

CONTRACT = CONTRACT_DIR / "metrics.csv"


def test_packaged_catalogue_is_the_contract() -> None:
    catalogue = load_catalogue()
    with CONTRACT.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["metric"] for r in rows] == list(catalogue)
    for row in rows:
        metric = catalogue[row["metric"]]
        assert (metric.ucum_unit, metric.loinc, metric.loinc_display) == (
            row["ucum_unit"], row["loinc"], row["loinc_display"],
        )
        assert (metric.plausible_min, metric.plausible_max) == (
            float(row["plausible_min"]), float(row["plausible_max"]),
        )


def test_loinc_codes_are_the_known_vital_sign_codes() -> None:
    # Literal table: catches the classic copy-paste bug of one metric coded with another's LOINC.
    assert {m.name: m.loinc for m in load_catalogue().values()} == {
        "heart_rate": "8867-4",
        "respiratory_rate": "9279-1",
        "spo2": "59408-5",
        "body_temperature": "8310-5",
        "systolic_bp": "8480-6",
        "diastolic_bp": "8462-4",
        "mean_arterial_pressure": "8478-0",
        "body_weight": "29463-7",
        "blood_glucose": "2339-0",
        "steps": "55423-8",
    }


def test_every_metric_has_a_unit_table_containing_its_canonical_unit() -> None:
    for metric in load_catalogue().values():
        assert to_canonical(metric.name, 1.0, metric.ucum_unit) == 1.0


@pytest.mark.parametrize(
    ("metric", "value", "unit", "expected"),
    [
        ("body_weight", 181.4, "[lb_av]", 82.2817), ("body_weight", 70500, "g", 70.5),
        ("body_weight", 10, "lb", 4.53592), ("body_temperature", 98.6, "[degF]", 37.0),
        ("body_temperature", 310.15, "K", 37.0), ("systolic_bp", 16, "kPa", 120.0098),
        ("blood_glucose", 5.5, "mmol/L", 99.088), ("blood_glucose", 0.00099, "kg/L", 99.0),
        ("blood_glucose", 0.0055, "mol/L", 99.088), ("heart_rate", 60, "{beats}/min", 60),
    ],
)
def test_conversions(metric: str, value: float, unit: str, expected: float) -> None:
    assert to_canonical(metric, value, unit) == pytest.approx(expected, abs=1e-3)


def test_unconvertible_units_are_refused_not_guessed() -> None:
    with pytest.raises(InvalidReading, match="not convertible"):
        to_canonical("body_weight", 1, "[stone_av]")
    with pytest.raises(InvalidReading, match="not convertible"):
        to_canonical("heart_rate", 1, "Cel")
    assert set(CONVERSIONS) == set(load_catalogue())


@pytest.mark.parametrize(
    "text",
    [
        "",
        "metric,ucum_unit\nx,y\n",
        "metric,ucum_unit,loinc,loinc_display,fhir_shape,plausible_min,plausible_max,notes\n",
        "metric,ucum_unit,loinc,loinc_display,fhir_shape,plausible_min,plausible_max,notes\n"
        "a,/min,1-1,A,x,10,5,\n",
        "metric,ucum_unit,loinc,loinc_display,fhir_shape,plausible_min,plausible_max,notes\n"
        "a,/min,1-1,A,x,low,5,\n",
        "metric,ucum_unit,loinc,loinc_display,fhir_shape,plausible_min,plausible_max,notes\n"
        "a,/min,1-1,A,x,1,5,\na,/min,1-1,A,x,1,5,\n",
    ],
)
def test_broken_catalogues_fail_at_start_up(text: str) -> None:
    with pytest.raises(CatalogueError):
        parse_catalogue(text)

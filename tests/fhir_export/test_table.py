"""The mapping table is validated at start-up: a wrong code or unit stops the service."""

from __future__ import annotations

import dataclasses

import pytest

from devices.catalogue import Metric, load_catalogue
from fhir_export.errors import ConfigurationError
from fhir_export.table import build_table


def catalogue(**changes: dict[str, object]) -> dict[str, Metric]:
    metrics = dict(load_catalogue())
    for name, fields in changes.items():
        metrics[name] = dataclasses.replace(metrics[name], **fields)  # type: ignore[arg-type]
    return metrics


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        # iomt-fhir's sample template coded diastolic pressure with the heart-rate code
        ({"diastolic_bp": {"loinc": "8867-4"}}, "blood-pressure panel|share LOINC|not allowed"),
        ({"heart_rate": {"ucum_unit": "mm[Hg]"}}, "not allowed for LOINC 8867-4"),
        ({"heart_rate": {"loinc": "8867-5"}}, "not a valid LOINC code"),  # bad check digit
        ({"heart_rate": {"loinc": "8867"}}, "not a valid LOINC code"),
        ({"heart_rate": {"loinc": "12345-6"}}, "not a valid LOINC code|no FHIR rule"),
        ({"heart_rate": {"loinc": "85354-9"}}, "no FHIR rule"),
        ({"heart_rate": {"ucum_unit": "beats per min"}}, "not a UCUM code"),
        ({"heart_rate": {"loinc_display": " "}}, "display is empty"),
        ({"respiratory_rate": {"loinc": "8867-4"}}, "share LOINC"),
    ],
)
def test_inconsistent_catalogue_is_refused(changes: dict[str, dict[str, object]], reason: str) -> None:
    with pytest.raises(ConfigurationError, match=reason):
        build_table(catalogue(**changes))


def test_panel_needs_systolic_and_diastolic() -> None:
    metrics = dict(load_catalogue())
    del metrics["diastolic_bp"]
    with pytest.raises(ConfigurationError, match="both systolic and diastolic"):
        build_table(metrics)


def test_packaged_catalogue_is_consistent() -> None:
    table = build_table()
    assert set(table.metrics) == set(load_catalogue())
    assert table.get("nonexistent") is None

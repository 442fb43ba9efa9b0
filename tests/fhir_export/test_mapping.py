"""Mapping readings to FHIR R4 vital-signs Observations: golden files, table, identifiers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.catalogue import load_catalogue
from fhir_export.errors import MappingError
from fhir_export.mapping import ObservationMapper, format_instant
from fhir_export.models import DeviceInfo
from tests.support.fhir_checks import assert_valid, profile_problems
from tests.support.fhir_items import CANONICAL, DEVICE, T0, item, reading

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("RPM_UPDATE_GOLDEN") == "1"
DEVICE_REF = "urn:uuid:00000000-0000-5000-8000-000000000001"
SINGLE_METRICS = [m for m in CANONICAL if m not in ("systolic_bp", "diastolic_bp", "mean_arterial_pressure")]


def check_golden(name: str, resource: dict[str, Any]) -> None:
    path = GOLDEN / f"{name}.json"
    text = json.dumps(resource, indent=2, sort_keys=True) + "\n"
    if UPDATE or not path.exists():
        if not UPDATE:
            pytest.fail(f"golden file {path.name} missing (run with RPM_UPDATE_GOLDEN=1)")
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
    assert json.loads(path.read_text()) == resource


@pytest.mark.parametrize("metric", SINGLE_METRICS)
def test_every_metric_matches_its_golden_file(mapper: ObservationMapper, metric: str) -> None:
    mapped = mapper.observation(item(reading(metric)), DEVICE_REF)
    assert_valid(mapped.resource)
    check_golden(metric, mapped.resource)


@pytest.mark.parametrize(
    ("name", "metrics"),
    [
        ("bp_panel", ("systolic_bp", "diastolic_bp")),
        ("bp_panel_with_mean", ("diastolic_bp", "mean_arterial_pressure", "systolic_bp")),
        ("bp_panel_missing_diastolic", ("systolic_bp",)),
    ],
)
def test_blood_pressure_is_a_panel_with_components(
    mapper: ObservationMapper, name: str, metrics: tuple[str, ...]
) -> None:
    mapped = mapper.observation(item(*(reading(m) for m in metrics)), DEVICE_REF)
    resource = mapped.resource
    assert_valid(resource)
    assert "valueQuantity" not in resource
    assert resource["code"]["coding"][0]["code"] == "85354-9"
    codes = [c["code"]["coding"][0]["code"] for c in resource["component"]]
    assert codes[:2] == ["8480-6", "8462-4"]
    check_golden(name, resource)


def test_status_flags_and_original_units_become_notes(mapper: ObservationMapper) -> None:
    weight = reading("body_weight", 82.2828, original=(181.4, "[lb_av]"), status=("body_movement",))
    mapped = mapper.observation(item(weight), DEVICE_REF)
    assert_valid(mapped.resource)
    check_golden("body_weight_converted_with_status", mapped.resource)
    panel = mapper.observation(
        item(
            reading("systolic_bp", status=("irregular_pulse", "cuff_too_loose")),
            reading("diastolic_bp", status=("irregular_pulse",)),
        ),
        DEVICE_REF,
    )
    assert panel.resource["note"] == [{"text": "Device status: irregular_pulse, cuff_too_loose"}]


def test_spo2_carries_both_loinc_codes(mapper: ObservationMapper) -> None:
    codes = [
        c["code"] for c in mapper.observation(item(reading("spo2")), DEVICE_REF).resource["code"]["coding"]
    ]
    assert codes == ["59408-5", "2708-6"]


def test_mapping_table_matches_the_contract() -> None:
    """Literal LOINC/UCUM per metric (metrics.csv of the service contract): catches a code
    pasted onto the wrong metric, the classic diastolic-coded-as-heart-rate bug."""
    expected = {
        "heart_rate": ("8867-4", "/min"),
        "respiratory_rate": ("9279-1", "/min"),
        "spo2": ("59408-5", "%"),
        "body_temperature": ("8310-5", "Cel"),
        "systolic_bp": ("8480-6", "mm[Hg]"),
        "diastolic_bp": ("8462-4", "mm[Hg]"),
        "mean_arterial_pressure": ("8478-0", "mm[Hg]"),
        "body_weight": ("29463-7", "kg"),
        "blood_glucose": ("2339-0", "mg/dL"),
        "steps": ("55423-8", "{steps}"),
    }
    from fhir_export.table import build_table

    table = build_table()
    assert {m: (c.loinc, c.ucum) for m, c in table.metrics.items()} == expected


def test_vital_signs_get_profiles_others_do_not(mapper: ObservationMapper) -> None:
    sd = "http://hl7.org/fhir/StructureDefinition/"
    profiles = {
        m: mapper.observation(item(reading(m)), DEVICE_REF).resource.get("meta", {}).get("profile")
        for m in SINGLE_METRICS
    }
    assert profiles == {
        "heart_rate": [sd + "vitalsigns", sd + "heartrate"],
        "respiratory_rate": [sd + "vitalsigns", sd + "resprate"],
        "spo2": [sd + "vitalsigns", sd + "oxygensat"],
        "body_temperature": [sd + "vitalsigns", sd + "bodytemp"],
        "body_weight": [sd + "vitalsigns", sd + "bodyweight"],
        "blood_glucose": None,
        "steps": None,
    }


def test_identifier_is_stable_and_distinguishes_readings(mapper: ObservationMapper) -> None:
    def ident(r: Any) -> str:
        info = DeviceInfo(device_id=r.device_id)
        return str(mapper.observation(item(r, device=info), DEVICE_REF).identifier.value)

    base = ident(reading("heart_rate"))
    assert base == "F0F1F2F3F4F5-8867-4-20261125T083000Z"
    assert ident(reading("heart_rate", 99)) == base  # the value does not identify a reading
    plus_one = T0.astimezone(timezone(timedelta(hours=1)))
    assert ident(reading("heart_rate", at=plus_one)) == base  # same instant, other offset
    assert ident(reading("heart_rate", at=T0 + timedelta(microseconds=1))).endswith("20261125T083000.000001Z")
    others = {
        ident(reading("heart_rate", at=T0 + timedelta(seconds=1))),
        ident(reading("respiratory_rate")),
        ident(reading("heart_rate", device="F0F1F2F3F4F6")),
    }
    assert base not in others and len(others) == 3


def test_device_resource(mapper: ObservationMapper) -> None:
    device = mapper.device(DEVICE)
    assert_valid(device)
    check_golden("device", device)
    bare = mapper.device(DeviceInfo(device_id="dev:1"))
    assert bare == {
        "resourceType": "Device",
        "identifier": [{"system": "urn:rpm-ingest:device", "value": "dev:1"}],
        "status": "active",
    }
    assert mapper.device_full_url("dev:1") == mapper.device_full_url("dev:1")
    assert mapper.device_full_url("dev:1") != mapper.device_full_url("dev:2")


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda: item(reading("heart_rate"), patient=None), "no FHIR Patient id"),
        (lambda: item(reading("heart_rate"), patient="../Patient/x"), "not a valid FHIR id"),
        (lambda: item(reading("heart_rate"), patient="x" * 65), "not a valid FHIR id"),
        (lambda: item(reading("heart_rate"), patient=""), "not a valid FHIR id"),
        (lambda: item(), "no readings"),
        (lambda: item(reading("heart_rate"), reading("spo2")), "only blood-pressure"),
        (lambda: item(reading("systolic_bp"), reading("heart_rate")), "mixes in"),
        (lambda: item(reading("systolic_bp"), reading("systolic_bp")), "twice"),
        (
            lambda: item(reading("systolic_bp"), reading("diastolic_bp", at=T0 + timedelta(seconds=1))),
            "different measurement times",
        ),
        (lambda: item(reading("heart_rate", device="OTHER")), "different devices"),
    ],
)
def test_unmappable_items_raise_mapping_error(mapper: ObservationMapper, build: Any, reason: str) -> None:
    with pytest.raises(MappingError, match=reason):
        mapper.observation(build(), DEVICE_REF)


def test_non_canonical_unknown_and_hostile_readings_are_refused(mapper: ObservationMapper) -> None:
    bad_unit = replace(reading("body_weight"), unit="[lb_av]")
    with pytest.raises(MappingError, match="canonical unit"):
        mapper.observation(item(bad_unit), DEVICE_REF)
    unknown = replace(reading("heart_rate"), metric="blood_alcohol")
    with pytest.raises(MappingError, match="no FHIR mapping"):
        mapper.observation(item(unknown), DEVICE_REF)
    naive = replace(reading("heart_rate"), measured_at=datetime(2026, 1, 1))
    with pytest.raises(MappingError, match="time zone"):
        mapper.observation(item(naive), DEVICE_REF)
    for value in (float("nan"), float("inf")):
        hostile = replace(reading("heart_rate"), value=value)
        with pytest.raises(MappingError, match="finite"):
            mapper.observation(item(hostile), DEVICE_REF)
    many_flags = tuple(f"flag_{i}" for i in range(500))
    mapped = mapper.observation(item(reading("heart_rate", status=many_flags)), DEVICE_REF)
    assert mapped.resource["note"][0]["text"].count(",") == 31  # capped at 32 flags
    assert_valid(mapped.resource)


def test_instants_are_utc_with_seconds() -> None:
    assert format_instant(datetime(2026, 3, 1, 7, 2, tzinfo=timezone(timedelta(hours=1)))) == (
        "2026-03-01T06:02:00Z"
    )
    with pytest.raises(MappingError):
        format_instant(datetime(2026, 3, 1))


_metrics = st.sampled_from(SINGLE_METRICS)


@settings(max_examples=200, deadline=None)
@given(
    metric=_metrics,
    fraction=st.floats(min_value=0, max_value=1),
    seconds=st.integers(min_value=0, max_value=10**9),
    micro=st.integers(min_value=0, max_value=999_999),
    device=st.from_regex(r"[A-Za-z0-9._:-]{1,64}", fullmatch=True),
)
def test_every_plausible_reading_maps_to_a_valid_observation(
    mapper: ObservationMapper, metric: str, fraction: float, seconds: int, micro: int, device: str
) -> None:
    spec = load_catalogue()[metric]
    value = spec.plausible_min + fraction * (spec.plausible_max - spec.plausible_min)
    at = datetime(1990, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds, microseconds=micro)
    info = DeviceInfo(device_id=device)
    mapped = mapper.observation(item(reading(metric, value, at=at, device=device), device=info), DEVICE_REF)
    assert profile_problems(mapped.resource) == []
    assert mapped.identifier.value.startswith(device + "-")


def test_mapping_is_pure() -> None:
    code = (
        "import sys, fhir_export.mapping, fhir_export.table, fhir_export.bundle;"
        "bad = [m for m in ('httpx', 'psycopg', 'paho', 'ingest', 'tenacity') if m in sys.modules];"
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0

"""An ECG strip as a FHIR R4 Observation (docs/contract/ehr-interop.md §5): the contract's shape,
valid for the R4B models, and the samples decoded back from ``valueSampledData``."""

from __future__ import annotations

import json
from array import array
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fhir.resources.R4B.observation import Observation

from devices.ecg import LEAD_NAMES, EcgStrip
from devices.ecg_synth import synthetic_strip
from fhir_export.ecg import decode_sampled_data, period_ms
from fhir_export.errors import MappingError
from fhir_export.mapping import ObservationMapper
from fhir_export.models import DeviceInfo, ExportItem
from fhir_export.table import build_table
from tests.support.fhir_checks import validate_structure

AT = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
DEVICE_REF = "urn:uuid:00000000-0000-5000-8000-000000000001"
# MDC_ECG_ELEC_POTL_<lead> (IEEE 11073-10101; the FHIR specification's ECG example uses 131329,
# 131330 and 131389 for I, II and III): literals, so the table in devices.ecg is checked.
MDC = {
    "I": "131329", "II": "131330", "III": "131389", "aVR": "131390", "aVL": "131391",
    "aVF": "131392", "V1": "131331", "V2": "131332", "V3": "131333", "V4": "131334",
    "V5": "131335", "V6": "131336",
}  # fmt: skip


def mapped(strip: EcgStrip, patient: str | None = "pat-1") -> dict[str, Any]:
    item = ExportItem((), patient, DeviceInfo(strip.device_id, type="ecg"), strip=strip)
    resource: dict[str, Any] = ObservationMapper(build_table()).observation(item, DEVICE_REF).resource
    return resource


def test_the_contract_example_maps_to_the_contract_shape() -> None:
    strip = EcgStrip("KARDIA-1", AT, 300, {"I": array("h", [12, 15, 18])}, "sinus_rhythm")
    assert mapped(strip) == {
        "resourceType": "Observation",
        "identifier": [
            {"system": "urn:rpm-ingest:observation", "value": "KARDIA-1-11524-6-20261201T080000Z"}
        ],
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "procedure",
                        "display": "Procedure",
                    }
                ],
                "text": "Procedure",
            }
        ],
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "11524-6", "display": "EKG study"}],
            "text": "EKG study",
        },
        "subject": {"reference": "Patient/pat-1"},
        "effectiveDateTime": "2026-12-01T08:00:00Z",
        "device": {"reference": DEVICE_REF},
        "component": [
            {
                "code": {
                    "coding": [
                        {
                            "system": "urn:iso:std:iso:11073:10101",
                            "code": "131329",
                            "display": "MDC_ECG_ELEC_POTL_I",
                        }
                    ],
                    "text": "Lead I",
                },
                "valueSampledData": {
                    "origin": {
                        "value": 0,
                        "unit": "uV",
                        "system": "http://unitsofmeasure.org",
                        "code": "uV",
                    },
                    "period": 3.333333,
                    "dimensions": 1,
                    "data": "12 15 18",
                },
            }
        ],
        "note": [{"text": "Device interpretation: sinus_rhythm"}],
    }


def test_twelve_leads_validate_and_decode_back_to_the_samples() -> None:
    strip = synthetic_strip("ECG-12", AT, leads=LEAD_NAMES, sample_rate_hz=500, duration_s=10, seed=3)
    resource = mapped(strip)
    validate_structure(resource)  # the R4B model; the vital-signs rules do not apply
    parsed = Observation.model_validate_json(json.dumps(resource))
    assert parsed.code.coding[0].code == "11524-6"
    assert [c["code"]["coding"][0]["code"] for c in resource["component"]] == [
        MDC[name] for name in LEAD_NAMES
    ]
    for component, (name, samples) in zip(resource["component"], strip.leads.items(), strict=True):
        value = component["valueSampledData"]
        assert value["period"] == 2 and value["dimensions"] == 1
        assert value["origin"]["value"] == 0 and value["origin"]["code"] == "uV"
        assert decode_sampled_data(value) == samples.tolist(), name


@pytest.mark.parametrize(("rate", "period"), [(100, 10), (250, 4), (300, 3.333333), (512, 1.953125)])
def test_period_is_in_milliseconds(rate: float, period: float) -> None:
    assert period_ms(rate) == period


def test_an_offset_time_is_sent_in_utc_and_keeps_its_identifier() -> None:
    local = AT.astimezone(timezone(timedelta(hours=-5)))
    strip = EcgStrip("KARDIA-1", local, 300, {"II": array("h", [1])})
    resource = mapped(strip)
    assert resource["effectiveDateTime"] == "2026-12-01T08:00:00Z"
    assert resource["identifier"][0]["value"] == "KARDIA-1-11524-6-20261201T080000Z"
    assert "note" not in resource


def test_an_unlinked_patient_or_another_device_cannot_be_mapped() -> None:
    strip = EcgStrip("KARDIA-1", AT, 300, {"I": array("h", [1])})
    with pytest.raises(MappingError, match="no FHIR Patient id"):
        mapped(strip, patient=None)
    item = ExportItem((), "pat-1", DeviceInfo("OTHER"), strip=strip)
    with pytest.raises(MappingError, match="another device"):
        ObservationMapper(build_table()).observation(item, DEVICE_REF)

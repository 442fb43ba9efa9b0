"""Pure: an alert as a FHIR Flag (fhir_export.flags) and the PHD identifiers
(fhir_export.profile_sets): the whole resource, the bundle entries, refusals."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from fhir.resources.R4B import get_fhir_model_class

from fhir_export.errors import MappingError
from fhir_export.flag_items import FlagItem, ObservationRef
from fhir_export.flags import flag_entry, flag_resource, observation_identifiers
from fhir_export.mapping import ObservationMapper
from fhir_export.profile_sets import eui48, eui64

OPENED = datetime(2026, 12, 1, 8, 0, 5, tzinfo=UTC)
ALERT = FlagItem(
    alert_id="7b0e5c52-4f6a-4d3e-9c57-2d7a1e1c9f10",
    resolved=False,
    severity="warning",
    message="spO2 91 % below low 92.",
    opened_at=OPENED,
    resolved_at=None,
    observations=(ObservationRef("DEV-1", "spo2", OPENED), ObservationRef("DEV-1", "spo2", OPENED)),
)


def test_active_flag_whole_resource() -> None:
    assert flag_resource(ALERT, "pat-1", ["Observation/17"]) == {
        "resourceType": "Flag",
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/flag-priority",
                "valueCodeableConcept": {
                    "coding": [{"system": "http://hl7.org/fhir/flag-priority-code", "code": "PM",
                                "display": "Medium priority"}]
                },
            },
            {"url": "http://hl7.org/fhir/StructureDefinition/flag-detail",
             "valueReference": {"reference": "Observation/17"}},
        ],
        "identifier": [{"system": "urn:rpm-ingest:alert", "value": ALERT.alert_id}],
        "status": "active",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/flag-category",
                                   "code": "clinical", "display": "Clinical"}], "text": "Clinical"}],
        "code": {"text": "Warning: SpO2 91 % below low 92 (remote patient monitoring)"},
        "subject": {"reference": "Patient/pat-1"},
        "period": {"start": "2026-12-01T08:00:05Z"},
    }  # fmt: skip
    get_fhir_model_class("Flag").model_validate(flag_resource(ALERT, "pat-1", ["Observation/17"]))


def test_resolved_flag_is_a_conditional_update_with_period_end() -> None:
    resolved = replace(ALERT, resolved=True, resolved_at=OPENED + timedelta(hours=2))
    resource = flag_resource(resolved, "pat-1", [])
    assert resource["status"] == "inactive"
    assert resource["period"] == {"start": "2026-12-01T08:00:05Z", "end": "2026-12-01T10:00:05Z"}
    entry = flag_entry(resolved, resource)
    assert entry["request"] == {
        "method": "PUT", "url": f"Flag?identifier=urn%3Arpm-ingest%3Aalert%7C{ALERT.alert_id}"
    }  # fmt: skip
    active = flag_entry(ALERT, flag_resource(ALERT, "pat-1", []))
    assert active["request"]["method"] == "POST"
    assert active["request"]["ifNoneExist"] == f"identifier=urn%3Arpm-ingest%3Aalert%7C{ALERT.alert_id}"


@pytest.mark.parametrize(
    ("item", "patient", "reason"),
    [
        (FlagItem("a", False, "warning", "  ", OPENED, None), "pat-1", "the alert has no message"),
        (FlagItem("a", False, "apocalyptic", "x", OPENED, None), "pat-1", "has no flag priority"),
        (FlagItem("a", True, "warning", "x", OPENED, None), "pat-1", "no resolution time"),
        (FlagItem("a", False, "warning", "x", OPENED, None), "bad id!", "not a valid FHIR id"),
    ],
)
def test_unmappable_alerts(item: FlagItem, patient: str, reason: str) -> None:
    with pytest.raises(MappingError, match=reason):
        flag_resource(item, patient, [])


def test_observations_behind_an_alert(mapper: ObservationMapper) -> None:
    (one,) = observation_identifiers(mapper, ALERT)  # the same reading twice: one identifier
    assert one.value == "DEV-1-59408-5-20261201T080005Z"
    bp = FlagItem("a", False, "warning", "x", OPENED, None, (ObservationRef("D", "diastolic_bp", OPENED),))
    assert observation_identifiers(mapper, bp)[0].value == "D-85354-9-20261201T080005Z"  # the panel
    unknown = FlagItem("a", False, "warning", "x", OPENED, None, (ObservationRef("D", "mood", OPENED),))
    assert observation_identifiers(mapper, unknown) == []


def test_phd_device_identifiers() -> None:
    assert eui64("F0F1F2F3F4F5") == "F0-F1-F2-FF-FE-F3-F4-F5"
    assert eui64("0011223344556677") == "00-11-22-33-44-55-66-77"
    assert eui64("f0:f1:f2:f3:f4:f5") == "F0-F1-F2-FF-FE-F3-F4-F5"
    assert eui64("CUFF-1") == "00-00-00-00-00-00-00-00"
    assert eui48("F0F1F2F3F4F5") == "F0-F1-F2-F3-F4-F5"
    assert eui48("CUFF-1") is None

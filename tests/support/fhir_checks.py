"""Validation of the JSON we send: FHIR structure (fhir.resources R4B models) plus the FHIR R4
vital-signs profile rules, checked on the raw JSON (the models coerce "72" to a number)."""

from __future__ import annotations

import json
import re
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
SD = "http://hl7.org/fhir/StructureDefinition/"
STATUSES = {
    "registered", "preliminary", "final", "amended", "corrected", "cancelled",
    "entered-in-error", "unknown",
}  # fmt: skip
# From http://hl7.org/fhir/R4/observation-vitalsigns.html (and LOINC for the others).
UNITS = {
    "8867-4": {"/min"},
    "9279-1": {"/min"},
    "2708-6": {"%"},
    "59408-5": {"%"},
    "8310-5": {"Cel", "[degF]"},
    "29463-7": {"kg", "g", "[lb_av]"},
    "8480-6": {"mm[Hg]"},
    "8462-4": {"mm[Hg]"},
    "8478-0": {"mm[Hg]"},
    "2339-0": {"mg/dL"},
    "55423-8": {"{steps}"},
}
PROFILE_CODE = {
    SD + "heartrate": "8867-4",
    SD + "resprate": "9279-1",
    SD + "oxygensat": "2708-6",
    SD + "bodytemp": "8310-5",
    SD + "bodyweight": "29463-7",
    SD + "bp": "85354-9",
}
VITAL_CODES = {
    "9279-1", "8867-4", "2708-6", "59408-5", "8310-5", "29463-7", "85354-9", "8480-6", "8462-4",
    "8478-0",
}  # fmt: skip
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def validate_structure(resource: dict[str, Any]) -> None:
    """Parse the exact JSON text with the R4B model of its type (raises on structure errors)."""
    text = json.dumps(resource)
    get_fhir_model_class(resource["resourceType"]).model_validate_json(text)


def _loinc(concept: dict[str, Any] | None) -> list[str]:
    return [c["code"] for c in (concept or {}).get("coding", []) if c.get("system") == LOINC]


def _quantity(quantity: Any, loinc: str | None, where: str) -> list[str]:
    problems = []
    if not isinstance(quantity, dict):
        return [f"{where}: not an object"]
    value = quantity.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.append(f"{where}.value must be a JSON number")
    if quantity.get("system") != UCUM:
        problems.append(f"{where}.system must be UCUM")
    if not quantity.get("unit") or not isinstance(quantity.get("unit"), str):
        problems.append(f"{where}.unit missing")
    if loinc in UNITS and quantity.get("code") not in UNITS[loinc]:
        problems.append(f"{where}.code {quantity.get('code')!r} invalid for {loinc}")
    return problems


def profile_problems(obs: dict[str, Any]) -> list[str]:
    """Vital-signs profile rules on an Observation's raw JSON; empty when it conforms."""
    problems: list[str] = []
    profiles = obs.get("meta", {}).get("profile", [])
    codes = _loinc(obs.get("code"))
    if obs.get("status") not in STATUSES:
        problems.append("status not in ObservationStatus")
    if not codes:
        problems.append("no LOINC code")
    effective = obs.get("effectiveDateTime")
    if not isinstance(effective, str) or not DATETIME.match(effective):
        problems.append("effectiveDateTime missing or without seconds and time zone")
    subject = obs.get("subject", {}).get("reference", "")
    if not subject.startswith("Patient/") or not FHIR_ID.match(subject[8:]):
        problems.append("subject must reference a Patient")
    vital = SD + "vitalsigns" in profiles
    if vital:
        cats = [c for cc in obs.get("category", []) for c in cc.get("coding", [])]
        if not any(c.get("system") == CATEGORY and c.get("code") == "vital-signs" for c in cats):
            problems.append("vital-signs category missing")
        if not set(codes) & VITAL_CODES:
            problems.append("code not in the vital-signs value set")
    for profile in profiles:
        if profile in PROFILE_CODE and PROFILE_CODE[profile] not in codes:
            problems.append(f"{profile} requires {PROFILE_CODE[profile]}")
    if "85354-9" in codes:
        if "valueQuantity" in obs:
            problems.append("BP panel must not have a top-level value")
        components = obs.get("component", [])
        for want in ("8480-6", "8462-4"):
            if sum(1 for c in components if want in _loinc(c.get("code"))) != 1:
                problems.append(f"BP panel needs exactly one {want} component")
        for i, component in enumerate(components):
            code = next(iter(_loinc(component.get("code"))), None)
            if "valueQuantity" in component:
                problems.extend(_quantity(component["valueQuantity"], code, f"component[{i}]"))
            elif "dataAbsentReason" not in component:
                problems.append(f"component[{i}] has neither value nor dataAbsentReason")
    else:
        code = next((c for c in codes if c in UNITS), None)
        problems.extend(_quantity(obs.get("valueQuantity"), code, "valueQuantity"))
    identifiers = obs.get("identifier", [])
    if len(identifiers) != 1 or not identifiers[0].get("system") or not identifiers[0].get("value"):
        problems.append("exactly one identifier with system and value is required")
    return problems


def assert_valid(resource: dict[str, Any]) -> None:
    validate_structure(resource)
    if resource["resourceType"] == "Observation":
        problems = profile_problems(resource)
        assert not problems, problems

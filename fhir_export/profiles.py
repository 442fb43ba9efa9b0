"""What FHIR R4 says about each LOINC code the catalogue uses: category, profile, allowed units.

This is data from the FHIR R4 specification (the vital-signs profiles of
http://hl7.org/fhir/R4/observation-vitalsigns.html and the observation-category code system).
The metric catalogue supplies code, unit and display; this table supplies how FHIR files them.
It is checked against the catalogue at start-up by :func:`fhir_export.table.build_table`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

LOINC_SYSTEM: Final = "http://loinc.org"
UCUM_SYSTEM: Final = "http://unitsofmeasure.org"
CATEGORY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
DATA_ABSENT_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
SD: Final = "http://hl7.org/fhir/StructureDefinition/"
VITALSIGNS_PROFILE: Final = SD + "vitalsigns"

CATEGORY_DISPLAY: Final = {
    "vital-signs": "Vital Signs",
    "laboratory": "Laboratory",
    "activity": "Activity",
    "procedure": "Procedure",  # ECG strips (fhir_export.ecg)
}

BP_PANEL_CODE: Final = "85354-9"
BP_PANEL_DISPLAY: Final = "Blood pressure panel with all children optional"
BP_PANEL_PROFILE: Final = SD + "bp"
SYSTOLIC_CODE: Final = "8480-6"
DIASTOLIC_CODE: Final = "8462-4"


@dataclass(frozen=True, slots=True)
class LoincRule:
    """How FHIR files observations with one LOINC code."""

    category: str
    profile: str | None  # specific vital-signs profile, None when none applies
    units: frozenset[str]  # UCUM codes the profile (or LOINC) allows
    extra_codes: tuple[tuple[str, str], ...] = ()  # further (LOINC code, display) pairs
    bp_component: bool = False


def _units(*codes: str) -> frozenset[str]:
    return frozenset(codes)


RULES: Final[dict[str, LoincRule]] = {
    "8867-4": LoincRule("vital-signs", SD + "heartrate", _units("/min")),
    "9279-1": LoincRule("vital-signs", SD + "resprate", _units("/min")),
    # The oxygen saturation profile requires 2708-6; pulse oximetry adds 59408-5.
    "59408-5": LoincRule(
        "vital-signs",
        SD + "oxygensat",
        _units("%"),
        extra_codes=(("2708-6", "Oxygen saturation in Arterial blood"),),
    ),
    "2708-6": LoincRule("vital-signs", SD + "oxygensat", _units("%")),
    "8310-5": LoincRule("vital-signs", SD + "bodytemp", _units("Cel", "[degF]")),
    "29463-7": LoincRule("vital-signs", SD + "bodyweight", _units("kg", "g", "[lb_av]")),
    SYSTOLIC_CODE: LoincRule("vital-signs", None, _units("mm[Hg]"), bp_component=True),
    DIASTOLIC_CODE: LoincRule("vital-signs", None, _units("mm[Hg]"), bp_component=True),
    "8478-0": LoincRule("vital-signs", None, _units("mm[Hg]"), bp_component=True),
    # Not vital signs in FHIR's sense: no vital-signs profile applies.
    "2339-0": LoincRule("laboratory", None, _units("mg/dL")),
    "41653-7": LoincRule("laboratory", None, _units("mg/dL")),
    "55423-8": LoincRule("activity", None, _units("{steps}")),
}

"""The Observation profiles a clinic's EHR may ask for, applied to the base mapping (pure).

- ``base``: the FHIR R4 vital-signs profiles (:mod:`fhir_export.mapping` as it always was).
- ``us-core``: US Core vital-signs profiles (http://hl7.org/fhir/us/core/): the same content
  (category vital-signs, LOINC code, UCUM quantity, blood pressure as a panel with systolic and
  diastolic, pulse oximetry with 59408-5 and 2708-6) claimed in ``meta.profile``.
- ``phd``: the HL7 Personal Health Device IG (http://hl7.org/fhir/uv/phd/): the MDC code beside
  the LOINC code (and on each blood-pressure component), the ``phd-observation`` category, the
  PHD identifier (device EUI-64, patient, time stamp, MDC code), the measuring device a
  ``PhdDevice`` (EUI-64 system id, transport address, MDS type, specialization) and the home
  gateway that forwarded the reading a ``PhgDevice`` of its own, referenced with the
  ``observation-gatewayDevice`` extension. A metric without an MDC code (steps) keeps the base
  mapping.

The tables are data from the IGs' StructureDefinitions; tests check the resources against them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal

from fhir_export.models import DeviceInfo
from fhir_export.table import MetricCoding

ProfileSet = Literal["base", "us-core", "phd"]
PROFILE_SETS: Final = ("base", "us-core", "phd")

US_CORE: Final = "http://hl7.org/fhir/us/core/StructureDefinition/"
US_CORE_VITAL_SIGNS: Final = US_CORE + "us-core-vital-signs"
# LOINC code of the Observation -> its US Core vital-signs profile
US_CORE_PROFILES: Final = {
    "8867-4": US_CORE + "us-core-heart-rate",
    "9279-1": US_CORE + "us-core-respiratory-rate",
    "59408-5": US_CORE + "us-core-pulse-oximetry",
    "8310-5": US_CORE + "us-core-body-temperature",
    "29463-7": US_CORE + "us-core-body-weight",
    "85354-9": US_CORE + "us-core-blood-pressure",
}

PHD: Final = "http://hl7.org/fhir/uv/phd/StructureDefinition/"
PHD_NUMERIC: Final = PHD + "PhdNumericObservation"
PHD_COMPOUND: Final = PHD + "PhdCompoundNumericObservation"
PHD_DEVICE: Final = PHD + "PhdDevice"
PHG_DEVICE: Final = PHD + "PhgDevice"
PHD_CATEGORY_SYSTEM: Final = "http://hl7.org/fhir/uv/phd/CodeSystem/PhdObservationCategories"
MDC_SYSTEM: Final = "urn:iso:std:iso:11073:10101"
LOINC_SYSTEM: Final = "http://loinc.org"
# the codes the FHIR R4 vital-signs profiles require ("magic" LOINC codes the PHD IG keeps)
MAGIC_LOINC: Final = frozenset({"8867-4", "9279-1", "2708-6", "8310-5", "29463-7", "85354-9"})
GATEWAY_EXTENSION: Final = "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice"
DEVICE_ID_TYPES: Final = "http://hl7.org/fhir/uv/phd/CodeSystem/ContinuaDeviceIdentifiers"
EUI64_SYSTEM: Final = "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680"
BT_MAC_SYSTEM: Final = "http://hl7.org/fhir/sid/eui-48/bluetooth"
ASN1_SYSTEM: Final = "http://hl7.org/fhir/uv/phd/CodeSystem/ASN1ToHL7"
V2_BINARY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v2-0136"
BP_PANEL_MDC: Final = ("150020", "MDC_PRESS_BLD_NONINV")
PHD_MDS: Final = ("65573", "MDC_MOC_VMS_MDS_SIMP")
PHG_MDS: Final = ("531981", "MDC_MOC_VMS_MDS_AHD")
SOFTWARE_REVISION: Final = ("531975", "MDC_ID_PROD_SPEC_SW")
# IEEE 11073-20601 device specializations (partition 8), chosen from the registered device type
SPECIALIZATIONS: Final = (
    (("oxim", "spo2", "pulse_ox"), ("528388", "MDC_DEV_SPEC_PROFILE_PULS_OXIM")),
    (("bp", "blood_pressure", "cuff"), ("528391", "MDC_DEV_SPEC_PROFILE_BPM")),
    (("therm", "temp"), ("528392", "MDC_DEV_SPEC_PROFILE_TEMP")),
    (("scale", "weight"), ("528399", "MDC_DEV_SPEC_PROFILE_SCALE")),
    (("gluc",), ("528401", "MDC_DEV_SPEC_PROFILE_GLUCOSE")),
)
GENERIC_SPECIALIZATION: Final = ("528384", "MDC_DEV_SPEC_PROFILE_HYDRA")
_HEX: Final = re.compile(r"^[0-9A-Fa-f]+$")
_UNKNOWN: Final = "unknown"


def _mdc(code: tuple[str, str]) -> dict[str, str]:
    return {"system": MDC_SYSTEM, "code": code[0], "display": code[1]}


def _concept(code: tuple[str, str]) -> dict[str, Any]:
    return {"coding": [_mdc(code)], "text": code[1]}


def eui64(device_id: str) -> str:
    """The IEEE EUI-64 of a device id as the PHD IG writes it (``FE-ED-AB-EE-DE-AD-77-C3``): 16 hex
    digits as they are, an EUI-48 (a Bluetooth address) extended with FF-FE in the middle, and
    all zeros for an id that is neither (the IG's value for a device without a system id)."""
    digits = device_id.replace(":", "").replace("-", "")
    if not _HEX.match(digits) or len(digits) not in (12, 16):
        digits = "0" * 16
    elif len(digits) == 12:
        digits = digits[:6] + "FFFE" + digits[6:]
    digits = digits.upper()
    return "-".join(digits[i : i + 2] for i in range(0, 16, 2))


def eui48(device_id: str) -> str | None:
    digits = device_id.replace(":", "").replace("-", "")
    if len(digits) != 12 or not _HEX.match(digits):
        return None
    return "-".join(digits[i : i + 2].upper() for i in range(0, 12, 2))


def _system_id(device_id: str) -> dict[str, Any]:
    return {
        "type": {"coding": [{"system": DEVICE_ID_TYPES, "code": "SYSID"}]},
        "system": EUI64_SYSTEM,
        "value": eui64(device_id),
    }


def _compact(moment: datetime) -> str:
    fraction = f".{moment.microsecond:06d}" if moment.microsecond else ""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S") + fraction + "Z"


# ---------------------------------------------------------------------------------- Observations


def apply_profile(
    profile: ProfileSet,
    resource: dict[str, Any],
    codings: Sequence[MetricCoding],
    *,
    patient: str,
    moment: datetime,
    device_id: str,
    gateway_reference: str | None,
) -> dict[str, Any]:
    """The base Observation made to follow ``profile`` (the resource is changed and returned)."""
    if profile == "us-core":
        return _us_core(resource)
    if profile == "phd":
        return _phd(resource, codings, patient, moment, device_id, gateway_reference)
    return resource


def _codes(resource: dict[str, Any]) -> list[str]:
    return [str(c.get("code")) for c in resource.get("code", {}).get("coding", [])]


def _add_profiles(resource: dict[str, Any], *urls: str) -> None:
    profiles = resource.setdefault("meta", {}).setdefault("profile", [])
    profiles.extend(url for url in urls if url not in profiles)


def _us_core(resource: dict[str, Any]) -> dict[str, Any]:
    specific = next((US_CORE_PROFILES[c] for c in _codes(resource) if c in US_CORE_PROFILES), None)
    if specific is not None:
        _add_profiles(resource, US_CORE_VITAL_SIGNS, specific)
    return resource


def _phd(
    resource: dict[str, Any],
    codings: Sequence[MetricCoding],
    patient: str,
    moment: datetime,
    device_id: str,
    gateway_reference: str | None,
) -> dict[str, Any]:
    panel = "component" in resource
    if panel:
        code = BP_PANEL_MDC
        by_loinc = {c.loinc: c.mdc for c in codings}
        for component in resource["component"]:
            loinc = component["code"]["coding"][0]["code"]
            mdc = by_loinc.get(loinc) or _KNOWN_COMPONENT_MDC.get(loinc)
            if mdc is None:
                return resource  # a component without an MDC code: not a PHD measurement
            component["code"]["coding"].insert(0, _mdc(mdc))
    else:
        mdc = codings[0].mdc if codings else None
        if mdc is None:
            return resource
        code = mdc
    _add_profiles(resource, PHD_COMPOUND if panel else PHD_NUMERIC)
    # One LOINC coding at most (PhdBaseObservation code.coding:LoincCoding 0..1): the vital sign's
    # code as the FHIR vital-signs profiles name it (oxygen saturation: 2708-6, not 59408-5).
    loinc = [c for c in resource["code"]["coding"] if c.get("system") == LOINC_SYSTEM]
    if len(loinc) > 1:
        keep = next((c for c in loinc if c.get("code") in MAGIC_LOINC), loinc[0])
        resource["code"]["coding"] = [c for c in resource["code"]["coding"] if c not in loinc or c is keep]
    resource["code"]["coding"].insert(0, _mdc(code))
    resource["category"].append(
        {"coding": [{"system": PHD_CATEGORY_SYSTEM, "code": "phd-observation", "display": "PHD generated"}]}
    )
    # PHD identifier: device, patient, the measurement's time stamp, the type code (no system).
    resource["identifier"].append({"value": f"{eui64(device_id)}-{patient}-{_compact(moment)}-{code[0]}"})
    if gateway_reference is not None:
        resource.setdefault("extension", []).append(
            {"url": GATEWAY_EXTENSION, "valueReference": {"reference": gateway_reference}}
        )
    return resource


# Components of the blood-pressure panel the catalogue may not list (the panel fills in absent
# systolic or diastolic with a dataAbsentReason): their MDC codes.
_KNOWN_COMPONENT_MDC: Final = {
    "8480-6": ("150021", "MDC_PRESS_BLD_NONINV_SYS"),
    "8462-4": ("150022", "MDC_PRESS_BLD_NONINV_DIA"),
    "8478-0": ("150023", "MDC_PRESS_BLD_NONINV_MEAN"),
}


# ---------------------------------------------------------------------------------- Devices


def phd_device(resource: dict[str, Any], info: DeviceInfo) -> dict[str, Any]:
    """The measuring device's Device as a ``PhdDevice`` (the base Device changed and returned)."""
    resource.setdefault("meta", {})["profile"] = [PHD_DEVICE]
    identifiers = resource["identifier"]
    identifiers.append(_system_id(info.device_id))
    mac = eui48(info.device_id)
    if mac is not None:
        identifiers.append(
            {
                "type": {"coding": [{"system": DEVICE_ID_TYPES, "code": "BTMAC"}]},
                "system": BT_MAC_SYSTEM,
                "value": mac,
            }
        )
    resource["manufacturer"] = info.manufacturer or _UNKNOWN
    resource["modelNumber"] = info.model or _UNKNOWN
    resource["type"] = {**_concept(PHD_MDS), "text": info.type or PHD_MDS[1]}
    kind = (info.type or "").lower()
    special = next(
        (code for words, code in SPECIALIZATIONS if any(w in kind for w in words)), GENERIC_SPECIALIZATION
    )
    resource["specialization"] = [{"systemType": _concept(special), "version": "1"}]
    return resource


def phg_device(gateway_id: str, identifier: dict[str, str]) -> dict[str, Any]:
    """The home gateway that forwarded readings, as a ``PhgDevice``."""
    return {
        "resourceType": "Device",
        "meta": {"profile": [PHG_DEVICE]},
        "identifier": [identifier, _system_id(gateway_id)],
        "status": "active",
        "manufacturer": "rpm-ingest",
        "modelNumber": "home gateway",
        "type": _concept(PHG_MDS),
        "version": [{"type": _concept(SOFTWARE_REVISION), "value": "rpm-ingest gateway"}],
        # regulation status (MDC 532354, bit 0): set = not a regulated medical device
        "property": [
            {
                "type": {
                    "coding": [{"system": ASN1_SYSTEM, "code": "532354.0", "display": "regulation-status"}]
                },
                "valueCode": [{"coding": [{"system": V2_BINARY_SYSTEM, "code": "Y"}]}],
            }
        ],
    }

"""Pure mapping: canonical readings -> FHIR R4 Observation and Device resources (JSON dicts).

Follows the FHIR R4 vital-signs profiles: ``status`` final, category, LOINC code (oxygen
saturation also carries 2708-6), subject, ``effectiveDateTime`` in UTC, ``valueQuantity`` in
UCUM; blood pressure as the 85354-9 panel with systolic/diastolic components and no top-level
value. Every Observation carries a stable identifier made from device id, LOINC code and
measured time (as the HL7 Personal Health Device guide does), so the same reading always maps
to the same identifier and a conditional create can never store it twice.

No I/O, no clock: the same input always gives the same output.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from devices.ecg import EcgStrip
from devices.models import Reading
from fhir_export.ecg import EKG_STUDY_CODE, PROCEDURE_CATEGORY, ecg_code, ecg_resource
from fhir_export.errors import MappingError
from fhir_export.models import DeviceInfo, ExportItem, Identifier, MappedObservation
from fhir_export.profile_sets import PROFILE_SETS, apply_profile, phd_device, phg_device
from fhir_export.profiles import (
    BP_PANEL_CODE,
    BP_PANEL_DISPLAY,
    BP_PANEL_PROFILE,
    CATEGORY_DISPLAY,
    CATEGORY_SYSTEM,
    DATA_ABSENT_SYSTEM,
    DIASTOLIC_CODE,
    LOINC_SYSTEM,
    SYSTOLIC_CODE,
    UCUM_SYSTEM,
    VITALSIGNS_PROFILE,
)
from fhir_export.table import MappingTable, MetricCoding

DEFAULT_OBSERVATION_SYSTEM: Final = "urn:rpm-ingest:observation"
DEFAULT_DEVICE_SYSTEM: Final = "urn:rpm-ingest:device"
# home gateways (PHD profile: a Device of their own, not in the Device registry of fhir_devices)
GATEWAY_SYSTEM: Final = "urn:rpm-ingest:gateway"
FHIR_ID_RE: Final = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
# Namespace for the urn:uuid fullUrls inside a Bundle (deterministic, so bundles are reproducible).
_FULLURL_NAMESPACE: Final = uuid.UUID("6f1c1f2e-4b5e-5d55-9a51-3c6b1a2f7e10")
_VALUE_DECIMALS: Final = 4
_MAX_NOTE_FLAGS: Final = 32


def format_instant(moment: datetime) -> str:
    """UTC FHIR dateTime with seconds, fractional seconds only when present, and ``Z``."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise MappingError("measured_at has no time zone")
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"


def _compact_instant(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y%m%dT%H%M%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"


def _number(value: float) -> int | float:
    if not math.isfinite(value):
        raise MappingError("value is not a finite number")
    rounded = round(value, _VALUE_DECIMALS)
    if rounded.is_integer() and abs(rounded) < 2**53:
        return int(rounded)
    return rounded


def _quantity(value: float, ucum: str) -> dict[str, Any]:
    return {"value": _number(value), "unit": ucum, "system": UCUM_SYSTEM, "code": ucum}


def _category(code: str) -> list[dict[str, Any]]:
    display = CATEGORY_DISPLAY[code]
    return [
        {
            "coding": [{"system": CATEGORY_SYSTEM, "code": code, "display": display}],
            "text": display,
        }
    ]


def _code(loinc: str, display: str, extra: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    coding = [{"system": LOINC_SYSTEM, "code": loinc, "display": display}]
    coding.extend({"system": LOINC_SYSTEM, "code": c, "display": d} for c, d in extra)
    return {"coding": coding, "text": display}


class ObservationMapper:
    """Maps export items with a validated :class:`MappingTable`."""

    def __init__(
        self,
        table: MappingTable,
        *,
        observation_system: str = DEFAULT_OBSERVATION_SYSTEM,
        device_system: str = DEFAULT_DEVICE_SYSTEM,
    ) -> None:
        self._table = table
        self.observation_system = observation_system
        self.device_system = device_system

    # ------------------------------------------------------------------ identifiers

    def observation_identifier(self, device_id: str, loinc: str, moment: datetime) -> Identifier:
        """``<device>-<LOINC>-<UTC time>``: the same reading always gets the same identifier."""
        return Identifier(self.observation_system, f"{device_id}-{loinc}-{_compact_instant(moment)}")

    def device_identifier(self, device_id: str) -> Identifier:
        return Identifier(self.device_system, device_id)

    @staticmethod
    def full_url(identifier: Identifier) -> str:
        """A stable ``urn:uuid`` for a resource inside a transaction Bundle."""
        key = f"{identifier.system}|{identifier.value}"
        return f"urn:uuid:{uuid.uuid5(_FULLURL_NAMESPACE, key)}"

    def device_full_url(self, device_id: str) -> str:
        return self.full_url(self.device_identifier(device_id))

    def observation_code(self, metric: str) -> str | None:
        """The LOINC code of the Observation a reading of ``metric`` goes out in (a blood-pressure
        component's is the panel's); None when the metric is not exported."""
        coding = self._table.get(metric)
        if coding is None:
            return None
        return BP_PANEL_CODE if coding.bp_component else coding.loinc

    # ------------------------------------------------------------------ resources

    def device(self, info: DeviceInfo, profile: str = "base") -> dict[str, Any]:
        """The Device resource a reading's Observation refers to (created once in the EHR); under
        the PHD profile a ``PhdDevice``."""
        resource: dict[str, Any] = {
            "resourceType": "Device",
            "identifier": [self.device_identifier(info.device_id).as_json()],
            "status": "active",
        }
        if info.manufacturer:
            resource["manufacturer"] = info.manufacturer
        if info.serial:
            resource["serialNumber"] = info.serial
        if info.model:
            resource["modelNumber"] = info.model
            resource["deviceName"] = [{"name": info.model, "type": "model-name"}]
        if info.type:
            resource["type"] = {"text": info.type}
        if profile == "phd":
            return phd_device(resource, info)
        return resource

    def observation(self, item: ExportItem, device_reference: str) -> MappedObservation:
        """Map one export item; raise :class:`MappingError` when it cannot be coded."""
        if not item.readings and item.strip is None:
            raise MappingError("nothing to export: no readings")
        patient = item.fhir_patient_id
        if patient is None:
            raise MappingError("the patient has no FHIR Patient id")
        if not FHIR_ID_RE.match(patient):
            raise MappingError("the patient's FHIR id is not a valid FHIR id")
        if item.strip is not None:
            return self._strip(item.strip, item.device, patient, device_reference)
        codings = [self._coding(reading) for reading in item.readings]
        first = item.readings[0]
        for reading in item.readings:
            if reading.device_id != item.device.device_id:
                raise MappingError("readings of one item come from different devices")
            if reading.measured_at != first.measured_at:
                raise MappingError("readings of one item have different measurement times")
        if any(c.bp_component for c in codings):
            if not all(c.bp_component for c in codings):
                raise MappingError("a blood-pressure panel mixes in other metrics")
            mapped = self._panel(item, codings, patient, device_reference)
        elif len(item.readings) != 1:
            raise MappingError("only blood-pressure readings can be grouped")
        else:
            mapped = self._single(item, codings[0], patient, device_reference)
        if item.profile == "base":
            return mapped
        return self._profiled(item, mapped, codings, patient)

    def _profiled(
        self, item: ExportItem, mapped: MappedObservation, codings: list[MetricCoding], patient: str
    ) -> MappedObservation:
        """The Observation under the clinic's profile set (:mod:`fhir_export.profile_sets`)."""
        if item.profile not in PROFILE_SETS:
            raise MappingError(f"unknown Observation profile {item.profile!r}")
        first = item.readings[0]
        companions: tuple[tuple[Identifier, dict[str, Any]], ...] = ()
        gateway_reference = None
        if item.profile == "phd" and first.gateway_id:
            gateway = Identifier(GATEWAY_SYSTEM, first.gateway_id)
            gateway_reference = self.full_url(gateway)
            companions = ((gateway, phg_device(first.gateway_id, gateway.as_json())),)
        resource = apply_profile(
            item.profile,  # type: ignore[arg-type]
            mapped.resource,
            codings,
            patient=patient,
            moment=first.measured_at,
            device_id=item.device.device_id,
            gateway_reference=gateway_reference,
        )
        if gateway_reference is not None and gateway_reference not in str(resource.get("extension")):
            companions = ()  # the profile did not apply (no MDC code): no gateway to send
        return MappedObservation(identifier=mapped.identifier, resource=resource, companions=companions)

    def _strip(
        self, strip: EcgStrip, device: DeviceInfo, patient: str, device_reference: str
    ) -> MappedObservation:
        """An ECG strip: one Observation, a component per lead (``fhir_export.ecg``)."""
        if strip.device_id != device.device_id:
            raise MappingError("the strip comes from another device than the item's")
        identifier = self.observation_identifier(strip.device_id, EKG_STUDY_CODE, strip.measured_at)
        base = self._base(
            identifier,
            PROCEDURE_CATEGORY,
            [],
            ecg_code(),
            patient,
            strip.measured_at,
            device_reference,
        )
        return MappedObservation(identifier=identifier, resource=ecg_resource(strip, base))

    def _coding(self, reading: Reading) -> MetricCoding:
        coding = self._table.get(reading.metric)
        if coding is None:
            raise MappingError(f"metric {reading.metric!r} has no FHIR mapping")
        if reading.unit != coding.ucum:
            raise MappingError(
                f"{reading.metric} is in {reading.unit!r}, not its canonical unit {coding.ucum!r}"
            )
        return coding

    def _base(
        self,
        identifier: Identifier,
        category: str,
        profiles: list[str],
        code: dict[str, Any],
        patient: str,
        moment: datetime,
        device_reference: str,
    ) -> dict[str, Any]:
        resource: dict[str, Any] = {"resourceType": "Observation"}
        if profiles:
            resource["meta"] = {"profile": profiles}
        resource.update(
            {
                "identifier": [identifier.as_json()],
                "status": "final",
                "category": _category(category),
                "code": code,
                "subject": {"reference": f"Patient/{patient}"},
                "effectiveDateTime": format_instant(moment),
            }
        )
        resource["device"] = {"reference": device_reference}
        return resource

    def _single(
        self, item: ExportItem, coding: MetricCoding, patient: str, device_reference: str
    ) -> MappedObservation:
        reading = item.readings[0]
        identifier = self.observation_identifier(reading.device_id, coding.loinc, reading.measured_at)
        profiles = []
        if coding.category == "vital-signs":
            profiles.append(VITALSIGNS_PROFILE)
            if coding.profile:
                profiles.append(coding.profile)
        resource = self._base(
            identifier,
            coding.category,
            profiles,
            _code(coding.loinc, coding.display, coding.extra_codes),
            patient,
            reading.measured_at,
            device_reference,
        )
        resource["valueQuantity"] = _quantity(reading.value, coding.ucum)
        notes = _notes(item.readings, {reading.metric: coding.display})
        if notes:
            resource["note"] = notes
        return MappedObservation(identifier=identifier, resource=resource)

    def _panel(
        self,
        item: ExportItem,
        codings: list[MetricCoding],
        patient: str,
        device_reference: str,
    ) -> MappedObservation:
        first = item.readings[0]
        by_code: dict[str, tuple[Reading, MetricCoding]] = {}
        for reading, coding in zip(item.readings, codings, strict=True):
            if coding.loinc in by_code:
                raise MappingError(f"the panel has {reading.metric} twice")
            by_code[coding.loinc] = (reading, coding)
        components: list[dict[str, Any]] = []
        for required in (SYSTOLIC_CODE, DIASTOLIC_CODE):
            if required not in by_code:
                name = "Systolic" if required == SYSTOLIC_CODE else "Diastolic"
                components.append(
                    {
                        "code": _code(required, f"{name} blood pressure"),
                        "dataAbsentReason": {
                            "coding": [
                                {"system": DATA_ABSENT_SYSTEM, "code": "unknown", "display": "Unknown"}
                            ]
                        },
                    }
                )
        order = {SYSTOLIC_CODE: 0, DIASTOLIC_CODE: 1}
        present = sorted(by_code.values(), key=lambda pair: (order.get(pair[1].loinc, 2), pair[1].loinc))
        for reading, coding in present:
            components.append(
                {
                    "code": _code(coding.loinc, coding.display),
                    "valueQuantity": _quantity(reading.value, coding.ucum),
                }
            )
        components.sort(key=lambda c: order.get(c["code"]["coding"][0]["code"], 2))
        identifier = self.observation_identifier(first.device_id, BP_PANEL_CODE, first.measured_at)
        resource = self._base(
            identifier,
            "vital-signs",
            [VITALSIGNS_PROFILE, BP_PANEL_PROFILE],
            _code(BP_PANEL_CODE, BP_PANEL_DISPLAY),
            patient,
            first.measured_at,
            device_reference,
        )
        resource["component"] = components
        notes = _notes(item.readings, {r.metric: c.display for r, c in present})
        if notes:
            resource["note"] = notes
        return MappedObservation(identifier=identifier, resource=resource)


def _notes(readings: Sequence[Reading], displays: dict[str, str]) -> list[dict[str, str]]:
    """Device status flags and original (pre-conversion) values, as Observation notes."""
    flags: list[str] = []
    for reading in readings:
        for flag in reading.status:
            if flag not in flags:
                flags.append(flag)
    notes: list[dict[str, str]] = []
    if flags:
        notes.append({"text": "Device status: " + ", ".join(flags[:_MAX_NOTE_FLAGS])})
    for reading in readings:
        if reading.original_unit != reading.unit:
            original = _number(reading.original_value)
            notes.append(
                {"text": f"{displays[reading.metric]} measured as {original} {reading.original_unit}"}
            )
    return notes

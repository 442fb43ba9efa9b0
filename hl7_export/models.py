"""The frozen inputs of the ORU^R01 builder, besides the canonical ``devices.models.Reading``."""

from __future__ import annotations

from dataclasses import dataclass

from devices.models import DeviceInfo, Reading


@dataclass(frozen=True, slots=True)
class Header:
    """MSH-3..6 and the MRN's assigning authority (RPM_HL7_* settings)."""

    sending_application: str = "RPM-INGEST"
    sending_facility: str = "default"
    receiving_application: str = "EHR"
    receiving_facility: str = "HOSPITAL"
    mrn_authority: str = ""


@dataclass(frozen=True, slots=True)
class PatientRef:
    mrn: str
    display_name: str


# The device a result was measured with (OBX-18): the registered device, as the FHIR export has it.
DeviceRef = DeviceInfo


@dataclass(frozen=True, slots=True)
class OruItem:
    """One measurement to send: a reading, or the components of one blood-pressure panel (in
    panel order), with the patient and device it belongs to."""

    readings: tuple[Reading, ...]
    patient: PatientRef
    device: DeviceRef

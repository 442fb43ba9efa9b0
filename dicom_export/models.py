"""What the builder needs besides the strip, and what it returns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo


@dataclass(frozen=True, slots=True)
class PatientRef:
    """The patient a strip belongs to: ``id`` is the service's own (for the study UID), ``mrn``
    becomes Patient ID (0010,0020), ``name`` Patient's Name (0010,0010)."""

    id: str
    mrn: str
    name: str | None


@dataclass(frozen=True, slots=True)
class ClinicRef:
    """The clinic: Issuer of Patient ID and Institution Name; its time zone decides the study day
    and the local times written (with their offset)."""

    id: str
    name: str
    timezone: tzinfo


@dataclass(frozen=True, slots=True)
class DicomObject:
    """One encoded instance (a DICOM Part 10 file) and the UIDs a PACS will file it under."""

    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    data: bytes

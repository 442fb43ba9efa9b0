"""Small frozen inputs of the mapping, besides the canonical ``devices.models.Reading``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from devices.ecg import EcgStrip
from devices.models import DeviceInfo as DeviceInfo  # re-exported, the type of ExportItem.device
from devices.models import Reading
from fhir_export.flag_items import FlagItem


@dataclass(frozen=True, slots=True)
class ExportItem:
    """One thing to export: a reading, the readings of one blood-pressure panel, or an ECG strip.

    ``fhir_patient_id`` is the id of the patient's ``Patient`` resource in the EHR, ``None``
    when the clinic has not linked the patient to the EHR yet.
    """

    readings: tuple[Reading, ...]
    fhir_patient_id: str | None
    device: DeviceInfo
    strip: EcgStrip | None = None  # an ECG strip instead of readings (fhir_export.ecg)
    flag: FlagItem | None = None  # an alert as a Flag instead of readings (fhir_export.flags)
    profile: str = "base"  # the clinic's Observation profiles (fhir_export.profile_sets)


@dataclass(frozen=True, slots=True)
class Identifier:
    system: str
    value: str

    def as_json(self) -> dict[str, str]:
        return {"system": self.system, "value": self.value}


@dataclass(frozen=True, slots=True)
class MappedObservation:
    """An Observation ready to send, with the identifier its conditional create searches."""

    identifier: Identifier
    resource: dict[str, Any] = field(hash=False, compare=False)
    # resources the Observation refers to by their fullUrl, sent (conditional create) beside it:
    # the home gateway's Device under the PHD profile
    companions: tuple[tuple[Identifier, dict[str, Any]], ...] = field(default=(), hash=False, compare=False)

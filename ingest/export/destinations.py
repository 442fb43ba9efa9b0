"""The export destinations the outbox serves, and which of them receive each stored reading.

Every outbox row names its destination; each destination's workers claim only their own rows
(:class:`ingest.export.outbox.PgOutbox`), so a slow PACS never holds up the EHR's Observations and a
refusal by one destination is that destination's alone.
"""

from __future__ import annotations

from typing import Final

from ingest.settings import Settings

FHIR: Final = "fhir"  # the EHR's FHIR API (Observations, Flags)
HL7: Final = "hl7"  # an interface engine over HL7 v2 / MLLP (ORU^R01)
DICOM: Final = "dicom"  # a PACS over DICOMweb (ECG waveforms)

# Destinations whose rows wait for the patient to be linked to the EHR (a FHIR Patient id).
WAITS_FOR_LINK: Final = frozenset({FHIR})


def reading_destinations(settings: Settings) -> tuple[str, ...]:
    """Where each stored reading (or blood-pressure panel) goes: one outbox row per destination.

    FHIR always: its rows are kept until an EHR is configured (``RPM_FHIR_BASE_URL``). Other
    destinations get rows only while they are configured.
    """
    destinations = [FHIR]
    if settings.hl7_mllp_url:
        destinations.append(HL7)
    return tuple(destinations)

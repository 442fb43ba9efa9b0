"""The ECG leads a strip may carry and their codes in a DICOM channel definition.

Channel Source Sequence (003A,0208) takes its codes from DICOM PS3.16 CID 3001 "ECG Leads"
(coding scheme designator ``SCPECG``: the lead identifiers of SCP-ECG, EN 1064, section 3, written
``5.6.3-9-<n>``). Lead I is 1, II is 2, V1-V6 are 3-8, III is 61, aVR 62, aVL 63, aVF 64; the code
meanings are CID 3001's. The names on the left are the contract's (``ehr-interop.md`` §5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class LeadCode:
    value: str
    meaning: str


SCHEME: Final = "SCPECG"
SCHEME_VERSION: Final = "1.3"

LEADS: Final[dict[str, LeadCode]] = {
    "I": LeadCode("5.6.3-9-1", "Lead I"),
    "II": LeadCode("5.6.3-9-2", "Lead II"),
    "III": LeadCode("5.6.3-9-61", "Lead III"),
    "aVR": LeadCode("5.6.3-9-62", "Lead aVR"),
    "aVL": LeadCode("5.6.3-9-63", "Lead aVL"),
    "aVF": LeadCode("5.6.3-9-64", "Lead aVF"),
    "V1": LeadCode("5.6.3-9-3", "Lead V1"),
    "V2": LeadCode("5.6.3-9-4", "Lead V2"),
    "V3": LeadCode("5.6.3-9-5", "Lead V3"),
    "V4": LeadCode("5.6.3-9-6", "Lead V4"),
    "V5": LeadCode("5.6.3-9-7", "Lead V5"),
    "V6": LeadCode("5.6.3-9-8", "Lead V6"),
}
"""Every lead of the 12-lead set, in the conventional order (channels are written in this order)."""

TWELVE_LEADS: Final = frozenset(LEADS)

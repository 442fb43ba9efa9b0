"""Patients from the EHR, pure: what a Patient search by MRN means, and what a Patient says.

A search by identifier must give exactly one Patient carrying that identifier to link a patient:
none is ``not_found``, several are ``ambiguous`` (never guessed). The EHR's answer is checked,
not trusted: a server that ignores the ``identifier`` parameter and answers every Patient it
holds must not link the first one, so only Patients that really carry ``<system>|<mrn>`` count.
Names are plain text from the EHR; whatever markup they hold stays text (the dashboard renders
text, never HTML), control characters are dropped and the length is bounded.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from fhir_export.mapping import FHIR_ID_RE

LinkStatus = Literal["linked", "pending", "not_found", "ambiguous", "error"]
MAX_NAME: Final = 200
MAX_MRN: Final = 64
_SPACES: Final = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class LookupResult:
    """What one look-up found: ``fhir_patient_id`` only when ``status`` is ``linked``."""

    status: LinkStatus
    detail: str
    fhir_patient_id: str | None = None


@dataclass(frozen=True, slots=True)
class EhrPatient:
    """What the service takes from an EHR Patient: its id, the clinic's MRN and a name."""

    fhir_id: str
    mrn: str | None
    display_name: str | None


def identifier_param(system: str, mrn: str) -> str:
    """The token search value ``<system>|<mrn>``, with FHIR search escaping of ``\\ | , $``."""

    def escape(text: str) -> str:
        for char in ("\\", "|", ",", "$"):
            text = text.replace(char, "\\" + char)
        return text

    return f"{escape(system)}|{escape(mrn)}"


def carries(resource: Mapping[str, Any], system: str, value: str) -> bool:
    """Does the resource carry the identifier ``system|value``?"""
    identifiers = resource.get("identifier")
    if not isinstance(identifiers, list):
        return False
    return any(
        isinstance(i, dict) and i.get("system") == system and i.get("value") == value for i in identifiers
    )


def lookup_result(
    matches: Sequence[Mapping[str, Any]], system: str, mrn: str, total: int | None = None
) -> LookupResult:
    """Decide a look-up from the Patients a search by ``system|mrn`` returned."""
    found = {str(r.get("id")) for r in matches if carries(r, system, mrn) and r.get("active") is not False}
    if len(found) > 1 or (len(found) == 1 and total is not None and total > 1):
        count = max(len(found), total or 0)
        return LookupResult("ambiguous", f"{count} Patients in the EHR carry this MRN; link one by hand")
    if not found:
        return LookupResult("not_found", "no Patient in the EHR carries this MRN")
    (fhir_id,) = found
    if not FHIR_ID_RE.match(fhir_id):
        return LookupResult("error", "the EHR's Patient has no valid id")
    return LookupResult("linked", f"found Patient/{fhir_id} by MRN", fhir_id)


def patient_of(resource: Mapping[str, Any], system: str) -> EhrPatient:
    """The Patient's id, its MRN under ``system`` (None when it has none or several), its name.

    Raises ValueError when the resource is not a Patient with a valid id.
    """
    if resource.get("resourceType") != "Patient":
        raise ValueError("not a Patient")
    fhir_id = resource.get("id")
    if not isinstance(fhir_id, str) or not FHIR_ID_RE.match(fhir_id):
        raise ValueError("the Patient has no valid id")
    values = {
        i.get("value")
        for i in resource.get("identifier") or []
        if isinstance(i, dict) and i.get("system") == system and isinstance(i.get("value"), str)
    }
    mrn = None
    if len(values) == 1:
        (value,) = values
        cleaned = clean_text(str(value), MAX_MRN + 1)
        mrn = cleaned if cleaned and len(cleaned) <= MAX_MRN else None
    return EhrPatient(fhir_id, mrn, display_name(resource))


def display_name(resource: Mapping[str, Any]) -> str | None:
    """``Patient.name`` as one line: the official (else usual, else first) name's text, or its
    given names and family name. None when the Patient has no usable name."""
    names = [n for n in resource.get("name") or [] if isinstance(n, dict)]
    if not names:
        return None
    ranked = sorted(names, key=lambda n: {"official": 0, "usual": 1}.get(str(n.get("use")), 2))
    for name in ranked:
        text = name.get("text")
        if isinstance(text, str) and clean_text(text, MAX_NAME):
            return clean_text(text, MAX_NAME)
        parts = [p for p in name.get("given") or [] if isinstance(p, str)]
        family = name.get("family")
        if isinstance(family, str):
            parts.append(family)
        joined = clean_text(" ".join(parts), MAX_NAME)
        if joined:
            return joined
    return None


def clean_text(text: str, limit: int) -> str:
    """Printable text on one line: control and format characters dropped, spaces folded."""
    kept = "".join(c for c in text if unicodedata.category(c)[0] != "C" or c in "\t\n\r")
    return _SPACES.sub(" ", kept).strip()[:limit].strip()

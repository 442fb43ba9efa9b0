"""Pure mapping: an alert -> a FHIR R4 ``Flag`` (contract ehr-interop.md §2), and its bundle entry.

One Flag per alert, identified by ``urn:rpm-ingest:alert|<alert id>``. While the alert is open
or acknowledged the Flag is ``active`` and goes as a conditional create (``ifNoneExist``): sent
again, it finds itself and changes nothing. Once the alert is resolved the Flag is ``inactive``
with ``period.end`` and goes as a conditional update (``PUT Flag?identifier=...``), which
updates the Flag the create stored, or stores it inactive at once should the create never have
gone. Whatever order a retried create and the update arrive in, the EHR ends with the inactive
Flag: the create never overwrites.

No I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import urlencode

from fhir_export.errors import MappingError
from fhir_export.flag_items import FlagItem
from fhir_export.mapping import FHIR_ID_RE, ObservationMapper, format_instant
from fhir_export.models import Identifier

ALERT_SYSTEM: Final = "urn:rpm-ingest:alert"
CATEGORY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/flag-category"
PRIORITY_URL: Final = "http://hl7.org/fhir/StructureDefinition/flag-priority"
PRIORITY_SYSTEM: Final = "http://hl7.org/fhir/flag-priority-code"
DETAIL_URL: Final = "http://hl7.org/fhir/StructureDefinition/flag-detail"
# alert severity -> flag-priority code and display (http://hl7.org/fhir/flag-priority-code)
PRIORITIES: Final = {
    "critical": ("PH", "High priority"),
    "warning": ("PM", "Medium priority"),
    "info": ("PL", "Low priority"),
}
MAX_TEXT: Final = 500


def flag_identifier(item: FlagItem) -> Identifier:
    return Identifier(ALERT_SYSTEM, item.alert_id)


def code_text(item: FlagItem) -> str:
    """The sentence a clinician reads in the EHR's flag banner: what, how bad, from where."""
    message = " ".join(item.message.split()).rstrip(".")
    if not message:
        raise MappingError("the alert has no message")
    severity = {"critical": "Critical", "warning": "Warning", "info": "Note"}.get(item.severity, "Alert")
    text = f"{severity}: {message[0].upper()}{message[1:]} (remote patient monitoring)"
    return text[:MAX_TEXT]


def observation_identifiers(mapper: ObservationMapper, item: FlagItem) -> list[Identifier]:
    """The identifiers of the Observations behind the alert (those the export maps at all)."""
    found: list[Identifier] = []
    for ref in item.observations:
        code = mapper.observation_code(ref.metric)
        if code is None:
            continue
        identifier = mapper.observation_identifier(ref.device_id, code, ref.measured_at)
        if identifier not in found:
            found.append(identifier)
    return found


def flag_resource(item: FlagItem, patient: str, observations: Sequence[str]) -> dict[str, Any]:
    """The Flag; ``observations`` are ``Observation/<id>`` references the EHR holds."""
    if not FHIR_ID_RE.match(patient):
        raise MappingError("the patient's FHIR id is not a valid FHIR id")
    priority = PRIORITIES.get(item.severity)
    if priority is None:
        raise MappingError(f"alert severity {item.severity!r} has no flag priority")
    extensions: list[dict[str, Any]] = [
        {
            "url": PRIORITY_URL,
            "valueCodeableConcept": {
                "coding": [{"system": PRIORITY_SYSTEM, "code": priority[0], "display": priority[1]}]
            },
        }
    ]
    extensions.extend({"url": DETAIL_URL, "valueReference": {"reference": ref}} for ref in observations)
    period: dict[str, str] = {"start": format_instant(item.opened_at)}
    if item.resolved:
        if item.resolved_at is None:
            raise MappingError("a resolved alert has no resolution time")
        period["end"] = format_instant(max(item.resolved_at, item.opened_at))
    return {
        "resourceType": "Flag",
        "extension": extensions,
        "identifier": [flag_identifier(item).as_json()],
        "status": "inactive" if item.resolved else "active",
        "category": [
            {
                "coding": [{"system": CATEGORY_SYSTEM, "code": "clinical", "display": "Clinical"}],
                "text": "Clinical",
            }
        ],
        "code": {"text": code_text(item)},
        "subject": {"reference": f"Patient/{patient}"},
        "period": period,
    }


def flag_entry(item: FlagItem, resource: dict[str, Any]) -> dict[str, Any]:
    """The transaction entry: conditional create while active, conditional update once resolved."""
    identifier = flag_identifier(item)
    search = urlencode({"identifier": f"{identifier.system}|{identifier.value}"})
    full_url = ObservationMapper.full_url(identifier)
    if item.resolved:
        return {
            "fullUrl": full_url,
            "resource": resource,
            "request": {"method": "PUT", "url": f"Flag?{search}"},
        }
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {"method": "POST", "url": "Flag", "ifNoneExist": search},
    }

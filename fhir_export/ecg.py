"""Pure mapping of an ECG strip to a FHIR R4 Observation (``docs/contract/ehr-interop.md`` §5).

One Observation per strip: category ``procedure``, code LOINC 11524-6 "EKG study", and one
``component`` per lead whose code is the lead channel's MDC code (IEEE 11073-10101) and whose
``valueSampledData`` carries the samples in µV (origin 0 uV, period in ms, dimensions 1), as in
the FHIR specification's own ECG example (``observation-example-sample-data``). The device's
interpretation, free text, goes in a note: it is the device's opinion, not a coded finding.

The identifier, the effective time and the references are made by
:class:`fhir_export.mapping.ObservationMapper`, which hands strips here.
"""

from __future__ import annotations

from typing import Any, Final

from devices.ecg import LEAD_MDC, EcgStrip
from fhir_export.errors import MappingError
from fhir_export.profiles import LOINC_SYSTEM, UCUM_SYSTEM

EKG_STUDY_CODE: Final = "11524-6"
EKG_STUDY_DISPLAY: Final = "EKG study"
MDC_SYSTEM: Final = "urn:iso:std:iso:11073:10101"
PROCEDURE_CATEGORY: Final = "procedure"
_PERIOD_DECIMALS: Final = 6


def ecg_code() -> dict[str, Any]:
    return {
        "coding": [{"system": LOINC_SYSTEM, "code": EKG_STUDY_CODE, "display": EKG_STUDY_DISPLAY}],
        "text": EKG_STUDY_DISPLAY,
    }


def period_ms(sample_rate_hz: float) -> int | float:
    """Milliseconds between samples (a FHIR decimal: whole when it is, else 6 decimals)."""
    period = round(1000.0 / sample_rate_hz, _PERIOD_DECIMALS)
    return int(period) if period.is_integer() else period


def sampled_data(samples: Any, sample_rate_hz: float) -> dict[str, Any]:
    """``valueSampledData`` of one lead: the samples in µV as FHIR's space-separated decimals."""
    return {
        "origin": {"value": 0, "unit": "uV", "system": UCUM_SYSTEM, "code": "uV"},
        "period": period_ms(sample_rate_hz),
        "dimensions": 1,
        "data": " ".join(map(str, samples)),
    }


def lead_component(name: str, samples: Any, sample_rate_hz: float) -> dict[str, Any]:
    code = LEAD_MDC.get(name)
    if code is None:
        raise MappingError(f"ECG lead {name!r} has no MDC code")
    mdc, refid = code
    return {
        "code": {
            "coding": [{"system": MDC_SYSTEM, "code": mdc, "display": refid}],
            "text": f"Lead {name}",
        },
        "valueSampledData": sampled_data(samples, sample_rate_hz),
    }


def ecg_resource(strip: EcgStrip, base: dict[str, Any]) -> dict[str, Any]:
    """The Observation of ``strip``: ``base`` holds what every Observation has (identifier,
    status, category, code, subject, effective time, device); components and note are added."""
    resource = dict(base)
    resource["component"] = [
        lead_component(name, samples, strip.sample_rate_hz) for name, samples in strip.leads.items()
    ]
    if strip.interpretation:
        resource["note"] = [{"text": f"Device interpretation: {strip.interpretation}"}]
    return resource


def decode_sampled_data(value: dict[str, Any]) -> list[int]:
    """The samples (µV) of a ``valueSampledData`` we wrote: origin + factor × data (no E/L/U)."""
    origin = value.get("origin", {}).get("value", 0)
    factor = value.get("factor", 1)
    out = []
    for token in str(value.get("data", "")).split():
        if token in ("E", "L", "U"):
            raise MappingError(f"sample {token!r} is not a number")
        number = origin + factor * float(token)
        out.append(int(number) if float(number).is_integer() else round(number))
    return out

"""What an outbox row keeps of its readings, and why a row is not sent (the reasons it shows).

A single reading is kept in typed columns (copied in SQL from the batch's new rows); a panel or a
late component keeps its readings in the ``readings`` JSON column, metric -> :func:`reading_json`.
:func:`row_readings` reads either way back as one document.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from devices.models import Reading
from fhir_export.panels import panel_order

WAITING_REASON: Final = (
    "the patient has no FHIR Patient id; link it with PATCH /v1/patients/{id} (fhir_patient_id)"
)
LATE_REASON: Final = (
    "arrived after its blood-pressure panel had been sent to the EHR, which conditional create"
    " cannot amend; the panel in the EHR lacks this component"
)
MAX_REASON: Final = 2000


def reading_json(reading: Reading) -> dict[str, Any]:
    """What a row keeps of one reading (device and time are columns of the row)."""
    data: dict[str, Any] = {
        "value": reading.value,
        "unit": reading.unit,
        "original_value": reading.original_value,
        "original_unit": reading.original_unit,
    }
    if reading.status:
        data["status"] = list(reading.status)
    if reading.source is not None:
        data["source"] = reading.source
    if reading.gateway_id is not None:
        data["gateway_id"] = reading.gateway_id
    if reading.device_time is not None:
        data["device_time"] = reading.device_time.isoformat()
    return data


def row_readings(alias: str = "outbox") -> str:
    """SQL for a row's readings as one document (metric -> what reading_json() makes), whichever
    way the row keeps them: the JSON column (panels, late components) or the typed columns
    (single readings)."""
    t = alias
    return f"""coalesce({t}.readings, jsonb_build_object({t}.export_key, jsonb_strip_nulls(
    jsonb_build_object(
        'value', {t}.value, 'unit', {t}.unit, 'original_value', {t}.original_value,
        'original_unit', {t}.original_unit,
        'status', CASE WHEN cardinality({t}.reading_status) > 0 THEN to_jsonb({t}.reading_status) END,
        'source', {t}.source, 'gateway_id', {t}.gateway_id, 'device_time', {t}.device_time))))"""


def reading_from_json(device_id: str, measured_at: datetime, metric: str, data: Any) -> Reading:
    """The reading back from a row; KeyError, TypeError or ValueError when it is unreadable."""
    device_time = data.get("device_time")
    return Reading(
        device_id=device_id,
        metric=metric,
        value=float(data["value"]),
        unit=str(data["unit"]),
        measured_at=measured_at,
        original_value=float(data["original_value"]),
        original_unit=str(data["original_unit"]),
        status=tuple(str(s) for s in data.get("status", ())),
        source=data.get("source"),
        gateway_id=data.get("gateway_id"),
        device_time=None if device_time is None else datetime.fromisoformat(device_time),
    )


def readings_of(device_id: str, measured_at: datetime, stored: Mapping[str, Any]) -> tuple[Reading, ...]:
    """A row's readings (what :func:`row_readings` selects), panel components in panel order."""
    ordered = sorted(stored.items(), key=lambda pair: panel_order(pair[0]))
    return tuple(reading_from_json(device_id, measured_at, metric, data) for metric, data in ordered)

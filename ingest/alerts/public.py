"""The outside shape of an alert (API answers, stream events, webhook payloads), built from a row."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from devices.display import display_unit

ALERT_COLUMNS: Final = (
    "id, clinic_id, patient_id, rule_key, kind, metric, subject, device_id, severity, status,"
    " value, unit, last_value, message, details, onset_at, latest_at, opened_at, late,"
    " critical_since, escalation_level, escalated_at, acknowledged_at, acknowledged_by,"
    " acknowledge_note, resolved_at, resolved_by, resolve_note, resolution, cleared_at, updated_at"
)
_HIDDEN: Final = frozenset({"clinic_id", "rule_key", "subject", "critical_since"})


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


def alert_public(row: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-ready public form of an alert row (selected with :data:`ALERT_COLUMNS`)."""
    out: dict[str, Any] = {
        "id": str(row["id"]),
        "patient_id": str(row["patient_id"]),
        "clinic": row["clinic_id"],
        "rule": row["rule_key"],
    }
    for name, value in row.items():
        if name in _HIDDEN or name in ("id", "patient_id"):
            continue
        out[name] = _json_value(value)
    # For people: the unit to show with value and last_value (``unit`` stays the stored UCUM code).
    out["display_unit"] = display_unit(row["metric"], row["unit"])
    return out

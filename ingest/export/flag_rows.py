"""What a claimed ``flag`` row exports: the alert it names (``item_ref``), read as it is now.

The row keeps no copy: a Flag sent after the alert was resolved goes out resolved. The readings
behind the alert are the one that began the condition and the newest that held it (on the
alert's device); a blood-pressure alert's readings went out as the panel Observation.
"""

from __future__ import annotations

from typing import Any, Final
from uuid import UUID

import psycopg

from fhir_export.flag_items import FlagItem, ObservationRef

# the alert "metric" of a blood-pressure alert; its readings went out in the panel, which any
# of its components finds (fhir_export.mapping.ObservationMapper.observation_code)
_METRIC_OF_ALERT: Final = {"blood_pressure": "systolic_bp"}


def read_flag(conn: psycopg.Connection[Any], item_ref: str | None) -> FlagItem:
    """The alert ``item_ref`` names; KeyError when there is none (the row is parked)."""
    if item_ref is None:
        raise KeyError("a flag row without item_ref")
    row = conn.execute(
        "SELECT id, status, severity, message, opened_at, resolved_at, metric, device_id, onset_at,"
        " latest_at FROM alerts WHERE id = %s",
        (UUID(item_ref),),
    ).fetchone()
    if row is None:
        raise KeyError(f"alert {item_ref} not found")
    alert_id, status, severity, message, opened_at, resolved_at, metric, device_id, onset, latest = row
    observations: list[ObservationRef] = []
    if metric is not None and device_id is not None:
        exported = _METRIC_OF_ALERT.get(metric, metric)
        for at in dict.fromkeys((onset, latest)):
            observations.append(ObservationRef(device_id, exported, at))
    return FlagItem(
        alert_id=str(alert_id),
        resolved=status == "resolved",
        severity=severity,
        message=message,
        opened_at=opened_at,
        resolved_at=resolved_at,
        observations=tuple(observations),
    )

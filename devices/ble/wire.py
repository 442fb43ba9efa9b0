"""Turn decoded measurements into reading objects of the MQTT/HTTP contract (``mqtt.md``).

The decoders know only the device's clock (naive, device-local, maybe wrong); the gateway
resolves each measurement to an aware instant and calls these helpers. The reading carries
the value and UCUM unit the device sent (``[lb_av]``, ``kPa``, ``[degF]``, ``kg/L``...): the
service converts to the canonical unit and keeps the original, as the contract asks.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from devices.ble.result import Measurement
from devices.errors import InvalidReading


def _aware(moment: datetime, what: str) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidReading(f"{what} must be timezone-aware, got {moment.isoformat()}")
    return moment.isoformat()


def wire_reading(
    m: Measurement,
    measured_at: datetime,
    *,
    device_time: datetime | None = None,
    source: str = "ble",
) -> dict[str, Any]:
    """One reading object for ``m``, measured at the resolved aware ``measured_at``.

    ``device_time`` (aware) is the device's own clock reading, given when the gateway
    corrected it; it travels so the service can keep both.
    """
    reading: dict[str, Any] = {
        "metric": m.metric,
        "value": m.original_value,
        "unit": m.original_unit,
        "measured_at": _aware(measured_at, "measured_at"),
        "status": list(m.status),
        "source": source,
    }
    if device_time is not None:
        reading["device_time"] = _aware(device_time, "device_time")
    return reading


def wire_readings(
    measurements: Iterable[Measurement],
    measured_at: datetime,
    *,
    device_time: datetime | None = None,
    source: str = "ble",
) -> list[dict[str, Any]]:
    """Reading objects for measurements that share one resolved time (one decoded value).

    Blood-pressure components come out together, so they travel in the same message.
    """
    return [wire_reading(m, measured_at, device_time=device_time, source=source) for m in measurements]

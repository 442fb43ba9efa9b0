"""MSH-10 for a measurement: the same every time that measurement is sent.

A re-send after a lost ACK must carry the control id of the first attempt, so the receiver can
tell a repeat. It is derived from what identifies the measurement in the store — the device, what
is exported (a metric, ``bp_panel`` or ``late:<metric>``) and the measured-at instant — not from
anything that changes between attempts. 20 characters: the ``ST`` length older receivers accept.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Final

LENGTH: Final = 20


def control_id(device_id: str, export_key: str, measured_at: datetime) -> str:
    """``R`` + 19 upper-case hex digits of SHA-256 over the measurement's natural key."""
    if measured_at.tzinfo is None:
        raise ValueError("naive datetime")
    key = f"{device_id}\x1f{export_key}\x1f{measured_at.astimezone(UTC).isoformat()}"
    return "R" + hashlib.sha256(key.encode("utf-8")).hexdigest()[: LENGTH - 1].upper()

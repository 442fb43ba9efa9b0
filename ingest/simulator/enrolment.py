"""Register simulated patients and devices through the service's REST API (an admin token)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import httpx

from ingest.errors import IngestError
from ingest.simulator.simulated_devices import SimulatedDevice

logger = logging.getLogger(__name__)

DEVICE_TYPES = {
    "hr_strap": "heart_rate_sensor",
    "pulse_oximeter": "pulse_oximeter",
    "bp_cuff": "blood_pressure_monitor",
    "thermometer": "thermometer",
    "scale": "weight_scale",
    "glucose_meter": "glucose_meter",
    "ecg_recorder": "ecg_recorder",
}


class RegistrationError(IngestError):
    """The API refused to register a simulated patient or device."""


def _check(response: httpx.Response, what: str) -> None:
    if response.status_code >= 400:
        raise RegistrationError(f"{what}: HTTP {response.status_code} {response.text[:200]}")


def register_fleet(
    client: httpx.Client, fleet: Sequence[SimulatedDevice], *, clinic: str = "default",
    now: datetime | None = None,
) -> int:
    """One synthetic patient per device, the device assigned to them; returns how many were new.

    Idempotent: a device that already has an assignment is left as it is.
    """
    since = (now or datetime.now(UTC)) - timedelta(days=30)
    created = 0
    for device in fleet:
        r = client.get(f"/v1/devices/{device.device_id}/assignments")
        if r.status_code == 200 and r.json():
            continue
        if r.status_code not in (200, 404):
            _check(r, f"device {device.device_id}")
        mrn = f"SIM-{device.device_id}"
        r = client.post(
            "/v1/patients",
            json={"mrn": mrn, "display_name": f"Simulated {device.device_id}", "clinic": clinic},
        )
        if r.status_code == 409:
            found = client.get("/v1/patients", params={"q": mrn})
            _check(found, f"patient {mrn}")
            matches = [p for p in found.json() if p["mrn"] == mrn]
            if not matches:
                raise RegistrationError(f"patient {mrn} exists but cannot be found")
            patient_id = matches[0]["id"]
        else:
            _check(r, f"patient {mrn}")
            patient_id = r.json()["id"]
        r = client.post(
            "/v1/devices",
            json={"id": device.device_id, "type": DEVICE_TYPES[device.kind], "manufacturer": "Simulated",
                  "model": device.kind, "clinic": clinic},
        )
        if r.status_code != 409:
            _check(r, f"device {device.device_id}")
        r = client.put(
            f"/v1/devices/{device.device_id}/assignment",
            json={"patient_id": patient_id, "since": since.isoformat()},
        )
        _check(r, f"assignment of {device.device_id}")
        created += 1
    logger.info("registered %d simulated devices (%d already known)", created, len(fleet) - created)
    return created

"""Devices are created in the EHR once, and their ids kept in the database.

The delivery loop puts a conditional create of the Device in a bundle until it knows the Device's
id. Conditional create races on some servers (two transactions that both find nothing both
create), so :class:`DeviceRegistry` sits between the loop and the EHR client: it takes each Device
entry out of the bundle, creates the Device on its own while holding the device's row of
``fhir_devices`` locked (a second worker waits, then reads the id), stores the id, and sends the
rest of the bundle with the Observations pointing at ``Device/<id>``. The loop gets back one
outcome per entry it sent, as if the server had answered them all.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from psycopg_pool import ConnectionPool

from fhir_export.bundle import EntryOutcome
from fhir_export.errors import PermanentDeliveryError, TransientDeliveryError
from fhir_export.worker import Transport

logger = logging.getLogger(__name__)

_LOCK: Final = """
INSERT INTO fhir_devices (ehr_base_url, device_id) VALUES (%s, %s) ON CONFLICT DO NOTHING
"""
_READ: Final = "SELECT fhir_reference FROM fhir_devices WHERE ehr_base_url = %s AND device_id = %s FOR UPDATE"
_STORE: Final = (
    "UPDATE fhir_devices SET fhir_reference = %s, updated_at = now()"
    " WHERE ehr_base_url = %s AND device_id = %s"
)


class DeviceRegistry:
    """A ``Transport`` that creates each Device once per EHR, under a per-device lock."""

    def __init__(self, inner: Transport, pool: ConnectionPool, *, base_url: str, device_system: str) -> None:
        self._inner = inner
        self._pool = pool
        self._base_url = base_url
        self._system = device_system
        self.devices_created = 0

    def transaction(self, bundle: dict[str, object]) -> list[EntryOutcome]:
        entries = bundle.get("entry")
        if not isinstance(entries, list):
            return self._inner.transaction(bundle)
        devices: dict[int, str] = {}
        for index, entry in enumerate(entries):
            device_id = self._device_id(entry)
            if device_id is not None:
                devices[index] = device_id
        if not devices:
            return self._inner.transaction(bundle)
        outcomes: dict[int, EntryOutcome] = {}
        references: dict[str, str] = {}
        for index, device_id in devices.items():
            try:
                reference = self._ensure(device_id, entries[index])
            except PermanentDeliveryError as exc:
                raise PermanentDeliveryError(
                    exc.reason, status=exc.status, entry_issues={index: [exc.reason]}
                ) from exc
            references[str(entries[index]["fullUrl"])] = reference
            outcomes[index] = EntryOutcome(index, 200, reference)
        rest = [(i, e) for i, e in enumerate(entries) if i not in devices]
        if rest:
            sent = {**bundle, "entry": [_point_at(e, references) for _, e in rest]}
            try:
                answers = self._inner.transaction(sent)
            except PermanentDeliveryError as exc:
                issues = {rest[k][0]: v for k, v in exc.entry_issues.items() if 0 <= k < len(rest)}
                raise PermanentDeliveryError(exc.reason, status=exc.status, entry_issues=issues) from exc
            for (index, _), answer in zip(rest, answers, strict=True):
                outcomes[index] = EntryOutcome(index, answer.status, answer.location, answer.reason)
        return [outcomes[i] for i in range(len(entries))]

    def _device_id(self, entry: Any) -> str | None:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") != "Device":
            return None
        if not isinstance(entry.get("fullUrl"), str):
            return None
        for identifier in resource.get("identifier") or ():
            if isinstance(identifier, dict) and identifier.get("system") == self._system:
                value = identifier.get("value")
                return value if isinstance(value, str) else None
        return None

    def _ensure(self, device_id: str, entry: dict[str, Any]) -> str:
        """The Device's ``Device/<id>`` in this EHR, created now if nobody did before."""
        key = (self._base_url, device_id)
        with self._pool.connection() as conn, conn.transaction():
            conn.execute(_LOCK, key)
            row = conn.execute(_READ, key).fetchone()
            if row is not None and row[0]:
                return str(row[0])
            single: dict[str, object] = {"resourceType": "Bundle", "type": "transaction", "entry": [entry]}
            answer = self._inner.transaction(single)[0]
            if not answer.ok:
                reason = answer.reason or f"EHR answered {answer.status} to the Device"
                if answer.status >= 500 or answer.status == 429:
                    raise TransientDeliveryError(reason, status=answer.status)
                raise PermanentDeliveryError(reason, status=answer.status)
            if answer.reference is None or not answer.reference.startswith("Device/"):
                raise TransientDeliveryError("the EHR did not say where it stored the Device")
            conn.execute(_STORE, (answer.reference, *key))
        if answer.created:
            self.devices_created += 1
        logger.info("device registered in the EHR as %s", answer.reference)
        return answer.reference


def _point_at(entry: Any, references: dict[str, str]) -> Any:
    """The entry with its ``device`` reference swapped from the bundle's fullUrl to the stored id."""
    resource = entry.get("resource") if isinstance(entry, dict) else None
    if not isinstance(resource, dict):
        return entry
    device = resource.get("device")
    target = device.get("reference") if isinstance(device, dict) else None
    if not isinstance(target, str) or target not in references:
        return entry
    return {**entry, "resource": {**resource, "device": {"reference": references[target]}}}

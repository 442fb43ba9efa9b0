"""Readings and export items for the FHIR mapping and delivery tests: one canonical value per
metric, a blood-pressure monitor, and a patient linked as ``pat-1``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from devices.models import Reading
from fhir_export.models import DeviceInfo, ExportItem

T0 = datetime(2026, 11, 25, 8, 30, tzinfo=UTC)
CANONICAL = {
    "heart_rate": ("/min", 72.0),
    "respiratory_rate": ("/min", 16.0),
    "spo2": ("%", 97.0),
    "body_temperature": ("Cel", 36.8),
    "systolic_bp": ("mm[Hg]", 128.0),
    "diastolic_bp": ("mm[Hg]", 84.0),
    "mean_arterial_pressure": ("mm[Hg]", 98.7),
    "body_weight": ("kg", 82.3),
    "blood_glucose": ("mg/dL", 104.0),
    "steps": ("{steps}", 5120.0),
}


def reading(
    metric: str,
    value: float | None = None,
    *,
    at: datetime = T0,
    device: str = "F0F1F2F3F4F5",
    status: tuple[str, ...] = (),
    original: tuple[float, str] | None = None,
) -> Reading:
    unit, default = CANONICAL[metric]
    value = default if value is None else value
    original_value, original_unit = original or (value, unit)
    return Reading(
        device_id=device,
        metric=metric,
        value=value,
        unit=unit,
        measured_at=at,
        original_value=original_value,
        original_unit=original_unit,
        status=status,
        source="ble",
    )


DEVICE = DeviceInfo(
    device_id="F0F1F2F3F4F5",
    type="blood_pressure_monitor",
    manufacturer="Omron",
    model="HEM-7600T",
    serial="20231104001",
)


def item(*readings: Reading, patient: str | None = "pat-1", device: DeviceInfo = DEVICE) -> ExportItem:
    return ExportItem(readings=tuple(readings), fhir_patient_id=patient, device=device)


def series(n: int, *, patient: str = "pat-1", device: DeviceInfo = DEVICE) -> list[ExportItem]:
    """``n`` heart-rate items a minute apart."""
    return [
        item(reading("heart_rate", 60 + i % 40, at=T0 + timedelta(minutes=i), device=device.device_id),
             patient=patient, device=device)
        for i in range(n)
    ]  # fmt: skip

"""UCUM unit conversion to each metric's canonical unit.

Only the conversions a clinic meets are listed; anything else is refused, never guessed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from devices.errors import InvalidReading

MMHG_PER_KPA: Final = 7.500615758
MGDL_PER_MMOLL_GLUCOSE: Final = 18.016
MGDL_PER_KGL: Final = 100_000.0
KG_PER_LB: Final = 0.45359237

Converter = Callable[[float], float]


def _scale(factor: float) -> Converter:
    return lambda v: v * factor


def _identity(v: float) -> float:
    return v


def _fahrenheit_to_celsius(v: float) -> float:
    return (v - 32.0) * 5.0 / 9.0


def _kelvin_to_celsius(v: float) -> float:
    return v - 273.15


_BP: dict[str, Converter] = {"mm[Hg]": _identity, "kPa": _scale(MMHG_PER_KPA)}
_RATE: dict[str, Converter] = {"/min": _identity, "{beats}/min": _identity, "1/min": _identity}

# metric -> {accepted UCUM code: converter to the canonical unit}
CONVERSIONS: Final[dict[str, dict[str, Converter]]] = {
    "heart_rate": _RATE,
    "respiratory_rate": {"/min": _identity, "{breaths}/min": _identity, "1/min": _identity},
    "spo2": {"%": _identity},
    "body_temperature": {
        "Cel": _identity,
        "[degF]": _fahrenheit_to_celsius,
        "K": _kelvin_to_celsius,
    },
    "systolic_bp": _BP,
    "diastolic_bp": _BP,
    "mean_arterial_pressure": _BP,
    "body_weight": {
        "kg": _identity,
        "g": _scale(0.001),
        "[lb_av]": _scale(KG_PER_LB),
        "lb": _scale(KG_PER_LB),
    },
    "blood_glucose": {
        "mg/dL": _identity,
        "mmol/L": _scale(MGDL_PER_MMOLL_GLUCOSE),
        "kg/L": _scale(MGDL_PER_KGL),
        "mol/L": _scale(MGDL_PER_MMOLL_GLUCOSE * 1000.0),
    },
    "steps": {"{steps}": _identity, "1": _identity},
}


def to_canonical(metric: str, value: float, unit: str) -> float:
    """Convert ``value`` in ``unit`` to the metric's canonical unit, or raise InvalidReading."""
    table = CONVERSIONS.get(metric)
    if table is None:
        raise InvalidReading(f"no unit table for metric {metric!r}")
    convert = table.get(unit)
    if convert is None:
        accepted = ", ".join(sorted(table))
        raise InvalidReading(f"unit {unit!r} is not convertible for {metric} (accepted: {accepted})")
    return convert(value)

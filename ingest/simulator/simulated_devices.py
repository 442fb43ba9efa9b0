"""Simulated devices: realistic readings with optional abnormal episodes (pure; time passed in).

Each device has its own baseline, drifts slowly around it (mean-reverting random walk) and adds
measurement noise; an abnormal device now and then enters an episode (tachycardia, desaturation,
hypertensive reading, fever, hypoglycaemia, fluid-retention weight gain) for a few readings.
Every value stays inside the plausible range of ``metrics.csv``, so it is stored (and may alert).
An ECG recorder sends 30 s strips (``devices.ecg_synth``: one or six leads at 300 Hz); an abnormal
one now and then records atrial fibrillation. ECG recorders are not in the default fleet (a strip
is tens to hundreds of kB): ask for ``ecg_recorder`` by name.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from devices.ecg import LEAD_NAMES, strip_to_wire
from devices.ecg import METRIC as ECG
from devices.ecg_synth import synthetic_strip
from devices.models import DEVICE_ID_RE

# kind -> (metrics measured together, device type registered)
KINDS: Final[Mapping[str, tuple[str, ...]]] = {
    "hr_strap": ("heart_rate",),
    "pulse_oximeter": ("spo2", "heart_rate"),
    "bp_cuff": ("systolic_bp", "diastolic_bp", "heart_rate"),
    "thermometer": ("body_temperature",),
    "scale": ("body_weight",),
    "glucose_meter": ("blood_glucose",),
    "ecg_recorder": (ECG,),
}
# The kinds of a fleet unless asked otherwise.
DEFAULT_KINDS: Final = tuple(kind for kind in KINDS if kind != "ecg_recorder")
ECG_RATE_HZ: Final = 300
ECG_SECONDS: Final = 30.0

# metric -> (typical mean, spread of personal baselines, noise, drift, plausible clamp, digits)
_NORMAL: Final[Mapping[str, tuple[float, float, float, float, tuple[float, float], int]]] = {
    "heart_rate": (72, 8, 3, 1.0, (25, 250), 0),
    "spo2": (97, 1.2, 0.6, 0.2, (60, 100), 0),
    "systolic_bp": (124, 10, 5, 1.0, (60, 260), 0),
    "diastolic_bp": (79, 6, 4, 0.8, (35, 170), 0),
    "body_temperature": (36.8, 0.2, 0.15, 0.05, (30, 43), 1),
    "body_weight": (82, 14, 0.2, 0.05, (30, 300), 1),
    "blood_glucose": (110, 15, 12, 3.0, (20, 600), 0),
}

# metric -> shift applied during an episode (absolute for spo2/temperature/glucose, else added)
_EPISODES: Final[Mapping[str, Mapping[str, float]]] = {
    "hr_strap": {"heart_rate": +62},
    "pulse_oximeter": {"spo2": -11, "heart_rate": +25},
    "bp_cuff": {"systolic_bp": +55, "diastolic_bp": +28, "heart_rate": +15},
    "thermometer": {"body_temperature": +2.3},
    "scale": {"body_weight": +2.8},
    "glucose_meter": {"blood_glucose": -55},
}

_CANONICAL_UNITS: Final[Mapping[str, str]] = {
    "heart_rate": "/min",
    "spo2": "%",
    "systolic_bp": "mm[Hg]",
    "diastolic_bp": "mm[Hg]",
    "body_temperature": "Cel",
    "body_weight": "kg",
    "blood_glucose": "mg/dL",
}


def _format_time(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class SimulatedDevice:
    """One device; ``measure(now)`` returns the next contract payload (one measurement)."""

    device_id: str
    kind: str
    abnormal: bool
    seed: int
    episode_chance: float = 0.03
    imperial: bool = False  # a US-market thermometer or scale reports [degF] / [lb_av]
    glucose_mmol: bool = False  # a meter set to mmol/L
    _rng: random.Random = field(init=False, repr=False)
    _baseline: dict[str, float] = field(init=False, repr=False)
    _drift: dict[str, float] = field(init=False, repr=False)
    _episode_left: int = field(default=0, init=False, repr=False)
    _last_at: datetime | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown device kind {self.kind!r}; known: {', '.join(KINDS)}")
        self._rng = random.Random(self.seed)
        self._baseline = {}
        self._drift = {}
        for metric in KINDS[self.kind]:
            if metric == ECG:
                self._baseline[metric] = self._rng.gauss(72, 8)  # the heart rate of its strips
                continue
            mean, spread, *_ = _NORMAL[metric]
            self._baseline[metric] = self._rng.gauss(mean, spread / 2)
            self._drift[metric] = 0.0

    @property
    def metrics(self) -> Sequence[str]:
        return KINDS[self.kind]

    @property
    def in_episode(self) -> bool:
        return self._episode_left > 0

    def measure(self, now: datetime) -> dict[str, Any]:
        """One message: every metric of the device, measured at the same instant (a BP panel)."""
        at = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if self._last_at is not None and at <= self._last_at:
            at = self._last_at + timedelta(milliseconds=1)  # one reading per instant per device
        self._last_at = at
        self._advance_episode()
        measured_at = _format_time(at)
        if self.kind == "ecg_recorder":
            return {**self._strip(at), "source": "simulator"}
        readings = [self._reading(metric, measured_at) for metric in self.metrics]
        if len(readings) == 1:
            return {**readings[0], "source": "simulator"}
        return {"source": "simulator", "readings": readings}

    def _advance_episode(self) -> None:
        if self._episode_left > 0:
            self._episode_left -= 1
        elif self.abnormal and self._rng.random() < self.episode_chance:
            self._episode_left = self._rng.randint(3, 12)

    def _strip(self, at: datetime) -> dict[str, Any]:
        """A 30 s strip: one lead (a card) or six (I, II, III, aVR, aVL, aVF), sinus rhythm, or
        atrial fibrillation during an abnormal device's episodes and in about a third of its
        other strips."""
        rng = self._rng
        af = self.abnormal and (self.in_episode or rng.random() < 0.35)
        leads = LEAD_NAMES[:6] if self.seed % 2 else ("I",)
        rate = self._baseline[ECG] + rng.gauss(0, 3) + (28 if af else 0)
        strip = synthetic_strip(
            self.device_id, at, rhythm="af" if af else "sinus", leads=leads,
            sample_rate_hz=ECG_RATE_HZ, duration_s=ECG_SECONDS,
            heart_rate_bpm=min(max(rate, 40.0), 160.0), seed=rng.randrange(2**32),
        )  # fmt: skip
        wire = strip_to_wire(strip)
        del wire["device_id"]  # the topic names the device
        return wire

    def _reading(self, metric: str, measured_at: str) -> dict[str, Any]:
        mean, _spread, noise, drift, (low, high), digits = _NORMAL[metric]
        rng = self._rng
        self._drift[metric] = 0.9 * self._drift[metric] + rng.gauss(0, drift)
        value = self._baseline[metric] + self._drift[metric] + rng.gauss(0, noise)
        if self._episode_left > 0:
            value += _EPISODES[self.kind].get(metric, 0.0) * rng.uniform(0.85, 1.15)
        if metric == "spo2":
            value = min(value, 100.0)
        value = round(min(max(value, low), high), digits)
        reading: dict[str, Any] = {
            "metric": metric, "value": value, "unit": _CANONICAL_UNITS[metric], "measured_at": measured_at,
        }
        if self.imperial and metric == "body_temperature":
            reading.update(value=round(value * 9 / 5 + 32, 1), unit="[degF]")
        elif self.imperial and metric == "body_weight":
            reading.update(value=round(value / 0.45359237, 1), unit="[lb_av]")
        elif metric == "blood_glucose" and self.glucose_mmol:
            reading.update(value=round(value / 18.016, 1), unit="mmol/L")
        if self.kind == "bp_cuff" and rng.random() < 0.03:
            reading["status"] = ["body_movement"]
        return reading


def build_fleet(
    count: int,
    *,
    kinds: Sequence[str] = DEFAULT_KINDS,
    abnormal_fraction: float = 0.2,
    seed: int = 1,
    id_prefix: str = "SIM-",
) -> list[SimulatedDevice]:
    """``count`` devices cycling through ``kinds``; about ``abnormal_fraction`` of them abnormal."""
    if count < 1:
        raise ValueError("a fleet needs at least one device")
    if not 0.0 <= abnormal_fraction <= 1.0:
        raise ValueError("abnormal_fraction must be between 0 and 1")
    if not kinds:
        raise ValueError("no device kinds given")
    if not DEVICE_ID_RE.fullmatch(f"{id_prefix}{count - 1:05d}"):
        raise ValueError(f"device id prefix {id_prefix!r} does not make valid device ids")
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"unknown device kind {kind!r}; known: {', '.join(KINDS)}")
    rng = random.Random(seed)
    fleet = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        fleet.append(
            SimulatedDevice(
                device_id=f"{id_prefix}{i:05d}",
                kind=kind,
                abnormal=rng.random() < abnormal_fraction,
                seed=rng.randrange(2**32),
                imperial=rng.random() < 0.25,
                glucose_mmol=rng.random() < 0.3,
            )
        )
    return fleet

"""Synthetic vitals with realistic daily rhythms and abnormal episodes. Pure: time in, value out.

Every value is a deterministic function of (patient seed, metric, time), so a demo restarted over
the same data directory regenerates the same history and the store absorbs it as duplicates.
Shapes follow textbook physiology closely enough to look right on a chart: heart rate and
temperature peak in the late afternoon and dip before dawn, blood pressure surges after waking,
glucose rises after meals, weight drifts slowly.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Final

UNITS: Final[Mapping[str, str]] = {
    "heart_rate": "/min",
    "respiratory_rate": "/min",
    "spo2": "%",
    "body_temperature": "Cel",
    "systolic_bp": "mm[Hg]",
    "diastolic_bp": "mm[Hg]",
    "body_weight": "kg",
    "blood_glucose": "mg/dL",
}
DIGITS: Final[Mapping[str, int]] = {"body_temperature": 1, "body_weight": 1}


@dataclass(frozen=True, slots=True)
class Episode:
    """An abnormal stretch: ``metric`` moves by ``delta`` (ramping in and out) over [start, end)."""

    metric: str
    start: datetime
    end: datetime
    delta: float
    ramp: timedelta = timedelta(0)

    def effect(self, at: datetime) -> float:
        if not self.start <= at < self.end:
            return 0.0
        if self.ramp <= timedelta(0):
            return self.delta
        rise = (at - self.start) / self.ramp
        fall = (self.end - at) / self.ramp
        return self.delta * max(0.0, min(1.0, rise, fall))


@dataclass(frozen=True, slots=True)
class Baseline:
    heart_rate: float = 72.0
    systolic_bp: float = 124.0
    diastolic_bp: float = 78.0
    spo2: float = 97.0
    body_temperature: float = 36.7
    respiratory_rate: float = 15.0
    body_weight: float = 78.0
    weight_trend_per_day: float = 0.0
    blood_glucose: float = 105.0
    meal_rise: float = 45.0


@dataclass(frozen=True, slots=True)
class Physiology:
    """One synthetic patient's body: baselines, local time zone, episodes."""

    seed: str
    baseline: Baseline = Baseline()
    zone: tzinfo = UTC
    episodes: tuple[Episode, ...] = field(default=())
    epoch: datetime = datetime(2026, 1, 1, tzinfo=UTC)

    def value(self, metric: str, at: datetime) -> float:
        """The reading a device would report for ``metric`` at ``at`` (rounded like a device)."""
        raw = _shape(self, metric, at) + sum(e.effect(at) for e in self.episodes if e.metric == metric)
        if metric == "diastolic_bp":
            # Diastolic pressure follows systolic episodes at about half the amplitude.
            raw += 0.5 * sum(e.effect(at) for e in self.episodes if e.metric == "systolic_bp")
        if metric == "heart_rate":
            # Desaturation and fever both push the heart rate up.
            raw -= 1.2 * sum(e.effect(at) for e in self.episodes if e.metric == "spo2")
            raw += 9.0 * sum(e.effect(at) for e in self.episodes if e.metric == "body_temperature")
        value = _clamp(metric, raw)
        return round(value, DIGITS.get(metric, 0))


def _clamp(metric: str, value: float) -> float:
    if metric == "spo2":
        return min(100.0, max(70.0, value))
    return max(0.0, value)


def noise(seed: str, metric: str, at: datetime) -> float:
    """A standard-normal-ish number fixed by (seed, metric, minute): repeatable jitter."""
    minute = int(at.timestamp() // 60)
    digest = hashlib.blake2b(f"{seed}|{metric}|{minute}".encode(), digest_size=8).digest()
    a, b = struct.unpack(">II", digest)
    u1 = (a + 1) / 4294967297
    u2 = b / 4294967296
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def _hours(at: datetime, zone: tzinfo) -> float:
    local = at.astimezone(zone)
    return local.hour + local.minute / 60 + local.second / 3600


def _circadian(hours: float, peak: float) -> float:
    """+1 at the peak hour, -1 twelve hours away."""
    return math.cos(2 * math.pi * (hours - peak) / 24)


def _meal_curve(hours: float) -> float:
    """Post-prandial glucose excursion: peaks ~1 h after breakfast, lunch and dinner."""
    return sum(math.exp(-(((hours - meal - 1.0) / 0.9) ** 2)) for meal in (7.5, 12.5, 19.0))


def _shape(p: Physiology, metric: str, at: datetime) -> float:
    b = p.baseline
    h = _hours(at, p.zone)
    n = noise(p.seed, metric, at)
    awake_surge = math.exp(-(((h - 8.5) / 1.8) ** 2))
    if metric == "heart_rate":
        return b.heart_rate + 7 * _circadian(h, 16) + 6 * awake_surge + 3.0 * n
    if metric == "systolic_bp":
        return b.systolic_bp + 5 * _circadian(h, 15) + 10 * awake_surge + 4.0 * n
    if metric == "diastolic_bp":
        return b.diastolic_bp + 3 * _circadian(h, 15) + 6 * awake_surge + 3.0 * n
    if metric == "spo2":
        return b.spo2 - 0.4 * (1 + _circadian(h, 3)) + 0.7 * n
    if metric == "body_temperature":
        return b.body_temperature + 0.3 * _circadian(h, 17) + 0.08 * n
    if metric == "respiratory_rate":
        return b.respiratory_rate + 1.0 * _circadian(h, 15) + 1.0 * n
    if metric == "body_weight":
        days = (at - p.epoch) / timedelta(days=1)
        return b.body_weight + b.weight_trend_per_day * days + 0.5 * _circadian(h, 20) + 0.15 * n
    if metric == "blood_glucose":
        return b.blood_glucose + b.meal_rise * _meal_curve(h) + 8.0 * n
    raise KeyError(f"no synthetic curve for {metric!r}")

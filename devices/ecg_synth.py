"""Synthetic ECG strips for the simulator, the demo, tests and benchmarks: pure and seeded.

Each beat is a sum of Gaussian waves (P, Q, R, S, T) placed around its R peak, in the manner of
McSharry et al.'s ECGSYN (IEEE Trans Biomed Eng 2003) without its dynamical system. Limb leads
I and II are synthesised; III, aVR, aVL and aVF follow from Einthoven's and Goldberger's
equations, so the six limb leads are consistent with one another. Chest leads show the usual R
wave progression (rS in V1 to qR in V6). ``"sinus"`` rhythm has P waves and a little heart-rate
variability; ``"af"`` (atrial fibrillation-like) has no P waves, irregularly irregular RR
intervals and a fibrillatory baseline. Baseline wander and a little noise are added.

The same arguments always give the same samples (``random.Random(seed)``); no clock, no I/O.
"""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Sequence
from datetime import datetime
from typing import Final, Literal

from devices.ecg import LEAD_NAMES, SAMPLE_TYPECODE, EcgStrip

Rhythm = Literal["sinus", "af"]
INTERPRETATIONS: Final[dict[str, str]] = {
    "sinus": "sinus_rhythm",
    "af": "atrial_fibrillation",
}

# Wave: (offset from the R peak in s at 60/min, width in s); the T wave's offset scales with the
# square root of the RR interval (Bazett).
_WAVES: Final = {
    "P": (-0.19, 0.022),
    "Q": (-0.028, 0.009),
    "R": (0.0, 0.011),
    "S": (0.028, 0.011),
    "T": (0.28, 0.055),
}
# Amplitudes in mV of each wave per synthesised lead (P, Q, R, S, T).
_AMPLITUDES: Final[dict[str, tuple[float, float, float, float, float]]] = {
    "I": (0.10, -0.05, 0.75, -0.10, 0.22),
    "II": (0.15, -0.08, 1.15, -0.25, 0.32),
    "V1": (0.08, 0.0, 0.25, -0.95, -0.06),
    "V2": (0.08, 0.0, 0.50, -1.30, 0.40),
    "V3": (0.08, 0.0, 0.90, -0.80, 0.45),
    "V4": (0.08, -0.05, 1.40, -0.40, 0.42),
    "V5": (0.08, -0.08, 1.30, -0.20, 0.34),
    "V6": (0.08, -0.08, 1.00, -0.10, 0.25),
}
_WINDOW_S: Final = 0.5  # a beat's waves are computed this far either side of its R peak


def rr_intervals(rhythm: Rhythm, duration_s: float, heart_rate_bpm: float, rng: random.Random) -> list[float]:
    """R peak times (s) covering ``duration_s`` (and a little before, for the waves' tails)."""
    mean_rr = 60.0 / heart_rate_bpm
    peaks: list[float] = []
    t = -_WINDOW_S + rng.uniform(0, mean_rr)
    phase = rng.uniform(0, 2 * math.pi)
    while t < duration_s + _WINDOW_S:
        peaks.append(t)
        if rhythm == "af":
            # irregularly irregular: no two successive intervals alike, 0.55-1.45 of the mean
            rr = mean_rr * rng.uniform(0.55, 1.45)
        else:
            # respiratory sinus arrhythmia (0.25 Hz, ±4 %) and a little jitter
            rr = mean_rr * (1 + 0.04 * math.sin(2 * math.pi * 0.25 * t + phase))
            rr *= 1 + rng.gauss(0, 0.01)
        t += rr
    return peaks


def _lead_signal(
    name: str, peaks: Sequence[float], rhythm: Rhythm, rate: float, count: int, rng: random.Random
) -> list[float]:
    """One synthesised lead in mV (before wander and noise)."""
    amps = _AMPLITUDES[name]
    signal = [0.0] * count
    for i, peak in enumerate(peaks):
        rr = peaks[i + 1] - peak if i + 1 < len(peaks) else peak - peaks[i - 1]
        scale = math.sqrt(max(rr, 0.3))
        first = max(0, math.ceil((peak - _WINDOW_S) * rate))
        last = min(count, math.floor((peak + _WINDOW_S) * rate) + 1)
        if first >= last:
            continue
        for wave, amp in zip(_WAVES, amps, strict=True):
            if amp == 0.0 or (wave == "P" and rhythm == "af"):
                continue
            offset, width = _WAVES[wave]
            centre = peak + (offset * scale if wave == "T" else offset)
            two_w2 = 2 * width * width
            for k in range(first, last):
                d = k / rate - centre
                if d * d < 16 * two_w2:
                    signal[k] += amp * math.exp(-d * d / two_w2)
    return signal


def synthesize(
    *,
    rhythm: Rhythm = "sinus",
    leads: Sequence[str] = ("I",),
    sample_rate_hz: float = 300.0,
    duration_s: float = 30.0,
    heart_rate_bpm: float = 70.0,
    seed: int = 0,
) -> dict[str, array[int]]:
    """Lead name -> samples in µV (int16), for the requested leads in 12-lead order."""
    unknown = [name for name in leads if name not in LEAD_NAMES]
    if unknown:
        raise ValueError(f"unknown leads {unknown}")
    rng = random.Random(seed)
    count = round(duration_s * sample_rate_hz)
    peaks = rr_intervals(rhythm, duration_s, heart_rate_bpm, rng)
    wanted = sorted(set(leads), key=LEAD_NAMES.index)
    base: dict[str, list[float]] = {}
    needs_limb = any(name in LEAD_NAMES[:6] for name in wanted)
    if needs_limb:
        for name in ("I", "II"):
            base[name] = _lead_signal(name, peaks, rhythm, sample_rate_hz, count, rng)
    for name in wanted:
        if name in _AMPLITUDES and name not in base:
            base[name] = _lead_signal(name, peaks, rhythm, sample_rate_hz, count, rng)
    # baseline wander (respiration) and, in AF, fibrillatory waves: added to the synthesised
    # leads before the augmented ones are derived, so the limb leads stay consistent
    wander_phase = rng.uniform(0, 2 * math.pi)
    f_waves = [(rng.uniform(4.0, 9.0), rng.uniform(0, 2 * math.pi)) for _ in range(3)]
    for k in range(count):
        t = k / sample_rate_hz
        value = 0.05 * math.sin(2 * math.pi * 0.3 * t + wander_phase)
        if rhythm == "af":
            value += sum(0.02 * math.sin(2 * math.pi * f * t + p) for f, p in f_waves)
        for signal in base.values():
            signal[k] += value
    out: dict[str, array[int]] = {}
    noise = rng.gauss
    for name in wanted:
        out[name] = array(
            SAMPLE_TYPECODE, (round(1000 * (v + noise(0, 0.008))) for v in _derived(name, base))
        )
    return out


def _derived(name: str, base: dict[str, list[float]]) -> list[float]:
    """A lead from the synthesised ones (Einthoven: III = II - I; Goldberger's augmented leads)."""
    if name in base:
        return base[name]
    i, ii = base["I"], base["II"]
    if name == "III":
        return [b - a for a, b in zip(i, ii, strict=True)]
    if name == "aVR":
        return [-(a + b) / 2 for a, b in zip(i, ii, strict=True)]
    if name == "aVL":
        return [a - b / 2 for a, b in zip(i, ii, strict=True)]
    if name == "aVF":
        return [b - a / 2 for a, b in zip(i, ii, strict=True)]
    raise ValueError(f"cannot derive lead {name}")  # pragma: no cover - checked above


def synthetic_strip(
    device_id: str,
    measured_at: datetime,
    *,
    rhythm: Rhythm = "sinus",
    leads: Sequence[str] = ("I",),
    sample_rate_hz: float = 300.0,
    duration_s: float = 30.0,
    heart_rate_bpm: float = 70.0,
    seed: int = 0,
) -> EcgStrip:
    """A whole synthetic strip, with the interpretation a device would give it."""
    samples = synthesize(
        rhythm=rhythm,
        leads=leads,
        sample_rate_hz=sample_rate_hz,
        duration_s=duration_s,
        heart_rate_bpm=heart_rate_bpm,
        seed=seed,
    )
    return EcgStrip(device_id, measured_at, float(sample_rate_hz), samples, INTERPRETATIONS[rhythm])

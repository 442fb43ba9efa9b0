"""The demo cardiac patient's ECG strips: six-lead, 30 s strips from a card recorder, in sinus
rhythm most of the time and in atrial fibrillation about one strip in three (deterministic by
device and minute, like the rest of the demo's data). The waveform is ``devices.ecg_synth``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from devices.ecg import LEAD_NAMES, strip_to_wire
from devices.ecg_synth import synthetic_strip
from ingest.demo.curves import Physiology, noise

RATE_HZ: Final = 300
SECONDS: Final = 30.0
AF_NOISE: Final = 0.45  # noise() above this: an AF strip (about a third of them)


def ecg_reading(device_id: str, body: Physiology, at: datetime, stamp: str, source: str) -> dict[str, Any]:
    """One strip as a reading object of the contract, recorded at ``at``."""
    af = noise(device_id, "rhythm", at) > AF_NOISE
    heart_rate = body.value("heart_rate", at) + (28.0 if af else 0.0)
    strip = synthetic_strip(
        device_id,
        at,
        rhythm="af" if af else "sinus",
        leads=LEAD_NAMES[:6],
        sample_rate_hz=RATE_HZ,
        duration_s=SECONDS,
        heart_rate_bpm=min(max(heart_rate, 45.0), 150.0),
        seed=int(at.timestamp()),
    )
    wire = strip_to_wire(strip)
    del wire["device_id"]  # the topic names the device
    wire["measured_at"] = stamp
    wire["source"] = source
    return wire

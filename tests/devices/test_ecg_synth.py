"""Synthetic ECG strips: P-QRS-T beats at the asked rate, regular in sinus rhythm and irregularly
irregular (without P waves) in atrial fibrillation, limb leads consistent, reproducible."""

from __future__ import annotations

import statistics
from array import array
from datetime import UTC, datetime

import pytest

from devices.ecg import LEAD_NAMES
from devices.ecg_synth import rr_intervals, synthesize, synthetic_strip

AT = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
RATE = 500


def r_peaks(samples: array[int], rate: int) -> list[int]:
    """Indices of R peaks: local maxima over half the strip's highest value, 250 ms apart."""
    threshold = max(samples) * 0.5
    peaks: list[int] = []
    for i in range(1, len(samples) - 1):
        if samples[i] > threshold and samples[i] >= samples[i - 1] and samples[i] > samples[i + 1]:
            if not peaks or i - peaks[-1] > rate // 4:
                peaks.append(i)
    return peaks


def cv(values: list[float]) -> float:
    return statistics.pstdev(values) / statistics.mean(values)


@pytest.mark.parametrize("bpm", [55, 72, 110])
def test_sinus_rhythm_beats_regularly_at_the_asked_rate(bpm: int) -> None:
    lead = synthesize(rhythm="sinus", leads=("II",), sample_rate_hz=RATE, duration_s=30, heart_rate_bpm=bpm)[
        "II"
    ]
    peaks = r_peaks(lead, RATE)
    rr = [(b - a) / RATE for a, b in zip(peaks, peaks[1:], strict=False)]
    assert 60 / statistics.mean(rr) == pytest.approx(bpm, rel=0.05)
    assert cv(rr) < 0.06  # respiratory variation only


def test_af_is_irregularly_irregular() -> None:
    lead = synthesize(
        rhythm="af", leads=("II",), sample_rate_hz=RATE, duration_s=30, heart_rate_bpm=90, seed=3
    )["II"]
    rr = [(b - a) / RATE for a, b in zip(r_peaks(lead, RATE), r_peaks(lead, RATE)[1:], strict=False)]
    assert cv(rr) > 0.15
    successive = [abs(b - a) for a, b in zip(rr, rr[1:], strict=False)]
    assert statistics.mean(successive) > 0.08  # no two intervals alike


def test_p_waves_precede_qrs_in_sinus_rhythm_and_are_absent_in_af() -> None:
    def p_height(rhythm: str) -> float:
        lead = synthesize(
            rhythm=rhythm, leads=("II",), sample_rate_hz=RATE, duration_s=20, heart_rate_bpm=70, seed=1
        )["II"]  # type: ignore[arg-type]
        heights = []
        for peak in r_peaks(lead, RATE)[1:-1]:
            p = lead[peak - int(0.19 * RATE)]  # the P wave's centre
            pr_baseline = lead[peak - int(0.09 * RATE)]  # the PR segment
            heights.append(p - pr_baseline)
        return statistics.mean(heights)

    assert p_height("sinus") > 100  # µV: a P wave of ~0.15 mV in lead II
    assert abs(p_height("af")) < 60


def test_qrs_and_t_have_their_usual_size_and_sign() -> None:
    leads = synthesize(leads=LEAD_NAMES, sample_rate_hz=RATE, duration_s=10, heart_rate_bpm=60, seed=2)
    assert 900 < max(leads["II"]) < 1600  # R in II about 1.2 mV
    assert min(leads["aVR"]) < -600  # aVR is mostly negative
    assert max(leads["V1"]) < 500 < -min(leads["V1"])  # rS in V1
    assert max(leads["V5"]) > 1000  # tall R laterally


def test_limb_leads_follow_einthoven_and_goldberger() -> None:
    leads = synthesize(leads=LEAD_NAMES[:6], sample_rate_hz=RATE, duration_s=5, seed=5)
    # each lead has its own ±8 µV noise: the relations hold within a few noise widths
    for i in range(0, len(leads["I"]), 7):
        one, two = leads["I"][i], leads["II"][i]
        assert leads["III"][i] == pytest.approx(two - one, abs=70)
        assert leads["aVR"][i] == pytest.approx(-(one + two) / 2, abs=70)
        assert leads["aVL"][i] == pytest.approx(one - two / 2, abs=70)
        assert leads["aVF"][i] == pytest.approx(two - one / 2, abs=70)


def test_strips_are_reproducible_and_valid() -> None:
    a = synthetic_strip("D", AT, rhythm="af", leads=("I", "V2"), seed=9)
    b = synthetic_strip("D", AT, rhythm="af", leads=("I", "V2"), seed=9)
    assert a == b and a.interpretation == "atrial_fibrillation"
    assert a.sample_count == 9000 and a.lead_names == ("I", "V2")
    assert synthetic_strip("D", AT, seed=10) != synthetic_strip("D", AT, seed=11)
    with pytest.raises(ValueError, match="unknown leads"):
        synthesize(leads=("X",))


def test_rr_intervals_cover_the_strip() -> None:
    import random

    peaks = rr_intervals("sinus", 10.0, 60.0, random.Random(1))
    assert peaks[0] < 0.5 and peaks[-1] > 10.0 - 1.1  # the next beat would fall after the strip

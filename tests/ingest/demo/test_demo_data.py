"""The demo's synthetic data: plausible, deterministic, accepted by the real message parser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from devices.catalogue import load_catalogue
from devices.message import Rules, parse_message
from ingest.demo import demo_patients
from ingest.demo.clinic import PATIENTS, LiveEpisode
from ingest.demo.curves import UNITS, Baseline, Episode, Physiology
from ingest.demo.history import schedule

NOW = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)
ZONE = ZoneInfo("Europe/London")


def test_every_generated_message_is_valid_and_plausible() -> None:
    catalogue = load_catalogue()
    total = 0
    for patient in demo_patients():
        for m in schedule(patient, ZONE, NOW, NOW):
            parsed = parse_message(
                m.payload, device_id=m.device_id, now=NOW, rules=Rules(), catalogue=catalogue
            )
            assert not parsed.rejections, (patient.mrn, m.payload, parsed.rejections)
            total += len(parsed.readings)
    assert total > 2000


def test_history_is_deterministic_and_in_the_past() -> None:
    patient = PATIENTS[0]
    first = list(schedule(patient, ZONE, NOW, NOW))
    again = list(schedule(patient, ZONE, NOW, NOW))
    assert first == again
    assert all(NOW - timedelta(days=30) <= m.measured_at < NOW for m in first)
    # a later restart regenerates the same timestamps (the store absorbs them as duplicates)
    later = {m.measured_at for m in schedule(patient, ZONE, NOW + timedelta(hours=5), NOW)}
    assert {m.measured_at for m in first if m.measured_at >= NOW - timedelta(days=29)} <= later


def test_adherence_and_silence_leave_gaps() -> None:
    by_mrn = {p.mrn: p for p in demo_patients()}
    forgetful = {m.measured_at.astimezone(ZONE).date() for m in schedule(by_mrn["DEMO-1006"], ZONE, NOW, NOW)}
    assert 8 <= len(forgetful) <= 24
    silent = list(schedule(by_mrn["DEMO-1007"], ZONE, NOW, NOW))
    assert max(m.measured_at for m in silent) <= NOW - timedelta(hours=60)


def test_daily_rhythms() -> None:
    body = Physiology(seed="rhythm", zone=UTC)
    day = datetime(2026, 11, 20, tzinfo=UTC)

    def mean(metric: str, hour: int) -> float:
        values = [body.value(metric, day + timedelta(days=d, hours=hour, minutes=m))
                  for d in range(10) for m in range(0, 60, 5)]
        return sum(values) / len(values)

    assert mean("heart_rate", 16) > mean("heart_rate", 4) + 8
    assert mean("body_temperature", 17) > mean("body_temperature", 5) + 0.3
    assert mean("systolic_bp", 9) > mean("systolic_bp", 2) + 8
    assert mean("blood_glucose", 8) > mean("blood_glucose", 5) + 25  # after breakfast


def test_episodes_ramp_in_and_out() -> None:
    start = datetime(2026, 11, 20, 12, tzinfo=UTC)
    episode = Episode("spo2", start, start + timedelta(minutes=10), -10.0, timedelta(minutes=2))
    assert episode.effect(start - timedelta(seconds=1)) == 0
    assert episode.effect(start + timedelta(minutes=1)) == pytest.approx(-5.0)
    assert episode.effect(start + timedelta(minutes=5)) == -10.0
    assert episode.effect(start + timedelta(minutes=9)) == pytest.approx(-5.0)
    assert episode.effect(start + timedelta(minutes=10)) == 0
    body = Physiology(seed="x", baseline=Baseline(spo2=95), zone=UTC, episodes=(episode,))
    assert body.value("spo2", start + timedelta(minutes=5)) <= 88
    # desaturation drives the heart rate up
    during = body.value("heart_rate", start + timedelta(minutes=5))
    assert during > Physiology(seed="x", zone=UTC).value("heart_rate", start + timedelta(minutes=5))


def test_live_episodes_recur_and_bring_values_past_the_thresholds() -> None:
    live = LiveEpisode("spo2", timedelta(seconds=15), timedelta(minutes=2), -9.0,
                       period=timedelta(minutes=12))
    episodes = live.around(NOW, NOW + timedelta(hours=1))
    assert len(episodes) == 5 and episodes[1].start - episodes[0].start == timedelta(minutes=12)
    tomas = next(p for p in PATIENTS if p.mrn == "DEMO-1002")
    body = tomas.physiology(ZONE, NOW, NOW)
    lowest = min(body.value("spo2", NOW + timedelta(seconds=s)) for s in range(40, 130, 10))
    assert lowest < tomas.thresholds["spo2"]["critical_low"]


@pytest.mark.parametrize("metric", sorted(UNITS))
def test_values_stay_plausible_over_a_month(metric: str) -> None:
    plausible = load_catalogue()[metric]
    for patient in PATIENTS:
        body = patient.physiology(ZONE, NOW, NOW)
        for hours in range(0, 24 * 30, 7):
            value = body.value(metric, NOW - timedelta(hours=hours))
            assert plausible.plausible_min <= value <= plausible.plausible_max, (patient.mrn, metric, value)


def test_the_cardiac_patient_records_a_strip_a_morning_some_in_atrial_fibrillation() -> None:
    rosa = next(p for p in PATIENTS if p.mrn == "DEMO-1008")
    strips = []
    for m in schedule(rosa, ZONE, NOW, NOW):
        parsed = parse_message(m.payload, device_id=m.device_id, now=NOW)
        assert not parsed.rejections, parsed.rejections
        strips.extend(strip for _, strip in parsed.strips)
    assert 29 <= len(strips) <= 31  # one a morning for 30 days
    assert {s.lead_names for s in strips} == {("I", "II", "III", "aVR", "aVL", "aVF")}
    rhythms = [s.interpretation for s in strips]
    assert 0 < rhythms.count("atrial_fibrillation") < len(strips) - rhythms.count("atrial_fibrillation")
    assert all(s.duration_s == 30.0 for s in strips)

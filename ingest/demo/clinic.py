"""The synthetic clinic of the demo: who the patients are, their devices, and how they measure.

Everything here is fictional (the cardiac patient's ECG strips are synthesised). Each patient has a
:class:`~ingest.demo.curves.Physiology` (daily rhythms), a measuring routine (what is measured at
which local hours, how reliably), episodes in their 30-day history, and live episodes that repeat
while the demo runs so alerts keep arriving.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
from typing import Final

from ingest.demo.curves import Baseline, Episode, Physiology

CLINIC_ID: Final = "demo"
CLINIC_NAME: Final = "Demo clinic (synthetic patients)"
HISTORY_DAYS: Final = 30


@dataclass(frozen=True, slots=True)
class DemoDevice:
    id: str
    type: str
    manufacturer: str
    model: str
    metrics: tuple[str, ...]
    #: local hours of the day at which the patient measures (history); empty = continuous
    hours: tuple[float, ...] = ()
    #: seconds between live readings while the demo runs
    live_every_s: float = 20.0
    #: behind the home gateway over Bluetooth (published by the gateway), else straight to MQTT
    ble: bool = False
    #: battery level the device last reported (percent), if it reports one
    battery: int | None = None


@dataclass(frozen=True, slots=True)
class LiveEpisode:
    """An episode that starts ``offset`` after the demo starts and recurs every ``period``."""

    metric: str
    offset: timedelta
    duration: timedelta
    delta: float
    period: timedelta = timedelta(minutes=12)
    ramp: timedelta = timedelta(seconds=20)

    def around(self, demo_start: datetime, until: datetime) -> list[Episode]:
        episodes = []
        start = demo_start + self.offset
        while start < until:
            episodes.append(Episode(self.metric, start, start + self.duration, self.delta, self.ramp))
            start += self.period
        return episodes


@dataclass(frozen=True, slots=True)
class DemoPatient:
    mrn: str
    display_name: str
    fhir_patient_id: str
    condition: str
    baseline: Baseline
    devices: tuple[DemoDevice, ...]
    #: episodes as (metric, days before now it started, length in days, delta, ramp in days)
    history_episodes: tuple[tuple[str, float, float, float, float], ...] = ()
    live_episodes: tuple[LiveEpisode, ...] = ()
    #: share of days the patient actually measures (adherence)
    adherence: float = 1.0
    #: recent silence: no readings in the last ``silent_hours`` (missing-data demo)
    silent_hours: float = 0.0
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)

    def physiology(self, zone: tzinfo, now: datetime, demo_start: datetime) -> Physiology:
        episodes = [
            Episode(metric, now - timedelta(days=ago), now - timedelta(days=ago - length), delta,
                    timedelta(days=ramp))
            for metric, ago, length, delta, ramp in self.history_episodes
        ]
        horizon = demo_start + timedelta(days=2)
        for live in self.live_episodes:
            episodes.extend(live.around(demo_start, horizon))
        return Physiology(seed=self.mrn, baseline=self.baseline, zone=zone, episodes=tuple(episodes))


MAKER: Final = "Acme Health (synthetic)"


def _dev(id_: str, type_: str, model: str, metrics: Sequence[str], hours: Sequence[float],
         live_every_s: float = 20.0, battery: int | None = None) -> DemoDevice:
    return DemoDevice(id_, type_, MAKER, model, tuple(metrics), tuple(hours), live_every_s, battery=battery)


BP_HOURS: Final = (7.5, 19.5)
BP_METRICS: Final = ("systolic_bp", "diastolic_bp", "heart_rate")
FOUR_TIMES: Final = (8.0, 12.5, 17.0, 21.0)
HOURLY: Final = tuple(float(h) + 0.25 for h in range(24))

PATIENTS: Final[tuple[DemoPatient, ...]] = (
    DemoPatient(
        mrn="DEMO-1001",
        display_name="Ada Brennan",
        fhir_patient_id="demo-ada-brennan",
        condition="heart failure: daily weight, blood pressure",
        baseline=Baseline(heart_rate=78, systolic_bp=118, diastolic_bp=72, body_weight=81.5),
        devices=(
            _dev("demo-scale-1001", "scale", "WS-20", ["body_weight"], (7.0,), 45, battery=82),
            _dev("demo-cuff-1001", "bp_cuff", "BP-7", BP_METRICS, BP_HOURS, 30, battery=64),
        ),
        # fluid retention: +2.6 kg over the last week (a heart-failure decompensation sign)
        history_episodes=(("body_weight", 7.0, 30.0, 2.6, 6.0),),
        thresholds={"body_weight": {"low": 76.0, "high": 85.0}},
    ),
    DemoPatient(
        mrn="DEMO-1002",
        display_name="Tom\u00e1s Okafor",
        fhir_patient_id="demo-tomas-okafor",
        condition="COPD: pulse oximetry, respiratory rate",
        baseline=Baseline(heart_rate=84, spo2=93.5, respiratory_rate=18),
        devices=(
            _dev("demo-ox-1002", "pulse_oximeter", "OX-3", ("spo2", "heart_rate"), FOUR_TIMES, 10,
                 battery=71),
            _dev("demo-rr-1002", "wearable", "Band-2", ["respiratory_rate"], HOURLY, 30),
        ),
        history_episodes=(("spo2", 12.0, 1.5, -5.5, 0.3),),
        live_episodes=(LiveEpisode("spo2", timedelta(seconds=15), timedelta(minutes=2), -9.0),),
        # COPD: a target of 88-92 % rather than the clinic's default
        thresholds={"spo2": {"low": 90, "critical_low": 86}},
    ),
    DemoPatient(
        mrn="DEMO-1003",
        display_name="Mei Lindqvist",
        fhir_patient_id="demo-mei-lindqvist",
        condition="hypertension: twice-daily blood pressure",
        baseline=Baseline(heart_rate=70, systolic_bp=142, diastolic_bp=88),
        devices=(
            _dev("demo-cuff-1003", "bp_cuff", "BP-7", BP_METRICS, BP_HOURS, 15),
        ),
        live_episodes=(LiveEpisode("systolic_bp", timedelta(seconds=40), timedelta(minutes=3), 44.0,
                                   period=timedelta(minutes=15)),),
    ),
    DemoPatient(
        mrn="DEMO-1004",
        display_name="Priya Nakamura",
        fhir_patient_id="demo-priya-nakamura",
        condition="type 1 diabetes: glucose meter",
        baseline=Baseline(heart_rate=68, blood_glucose=118, meal_rise=70),
        devices=(
            _dev("demo-glu-1004", "glucose_meter", "GL-5", ["blood_glucose"], (7.0, 11.5, 17.5, 22.0),
                 15),
        ),
        history_episodes=(("blood_glucose", 4.0, 0.15, -62.0, 0.05),),
        live_episodes=(LiveEpisode("blood_glucose", timedelta(minutes=3), timedelta(minutes=2), -75.0,
                                   period=timedelta(minutes=18)),),
        adherence=0.9,
    ),
    DemoPatient(
        mrn="DEMO-1005",
        display_name="Jonas Adeyemi",
        fhir_patient_id="demo-jonas-adeyemi",
        condition="after surgery: temperature, heart rate",
        baseline=Baseline(heart_rate=74, body_temperature=36.8),
        devices=(
            _dev("demo-therm-1005", "thermometer", "TH-1", ["body_temperature"], FOUR_TIMES, 20),
            _dev("demo-band-1005", "wearable", "Band-2", ["heart_rate"], HOURLY, 20),
        ),
        live_episodes=(LiveEpisode("body_temperature", timedelta(minutes=1), timedelta(minutes=4), 1.8,
                                   period=timedelta(minutes=20)),),
    ),
    DemoPatient(
        mrn="DEMO-1006",
        display_name="Elena Kowalski",
        fhir_patient_id="demo-elena-kowalski",
        condition="at home with Bluetooth devices behind a home gateway",
        # centred where the emulated home's devices measure, so history and live readings agree
        baseline=Baseline(heart_rate=72, systolic_bp=122, diastolic_bp=79, spo2=97.0,
                          body_temperature=36.8, blood_glucose=105, meal_rise=25),
        devices=(),  # the emulated Bluetooth home adds hers (see ingest.demo.home)
        adherence=0.55,
    ),
    DemoPatient(
        mrn="DEMO-1007",
        display_name="Walter Schmidt",
        fhir_patient_id="demo-walter-schmidt",
        condition="heart failure: daily weight (stopped measuring: the scale's battery is flat)",
        baseline=Baseline(body_weight=92.0, systolic_bp=128, diastolic_bp=80),
        devices=(
            _dev("demo-scale-1007", "scale", "WS-20", ["body_weight"], (7.25,), 60, battery=9),
        ),
        adherence=0.85,
        silent_hours=60.0,
    ),
    DemoPatient(
        mrn="DEMO-1008",
        display_name="Rosa Delgado",
        fhir_patient_id="demo-rosa-delgado",
        condition="paroxysmal atrial fibrillation: a six-lead ECG card every morning (ingest.demo.ecg)",
        baseline=Baseline(heart_rate=74, systolic_bp=131, diastolic_bp=82),
        devices=(
            _dev("demo-ecg-1008", "ecg_recorder", "EC-6L", ["ecg"], (8.0,), 90, battery=77),
            _dev("demo-cuff-1008", "bp_cuff", "BP-7", BP_METRICS, (8.25,), 45),
        ),
    ),
)


def with_devices(patient: DemoPatient, devices: Sequence[DemoDevice]) -> DemoPatient:
    return replace(patient, devices=patient.devices + tuple(devices))

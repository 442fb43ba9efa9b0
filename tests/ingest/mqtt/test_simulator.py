"""The simulator: realistic, valid readings (checked by the real parser), and `rpm-ingest simulate`
registering its fleet through the API and publishing to a real broker into a running service."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from devices.message import parse_message
from ingest.simulator.simulated_devices import DEFAULT_KINDS, build_fleet
from tests.support.mqtt_ingest import count_readings, dead_letters
from tests.support.service import RunningService
from tests.support.waiting import wait_until

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
RPM_INGEST = str(Path(sys.executable).with_name("rpm-ingest"))


def test_every_simulated_reading_is_valid_and_episodes_are_abnormal() -> None:
    fleet = build_fleet(60, abnormal_fraction=0.5, seed=7)
    highest_hr, lowest_spo2 = 0.0, 100.0
    for device in fleet:
        last = None
        for i in range(300):
            now = NOW + timedelta(seconds=i // 3)  # the same instant several times
            later = now + timedelta(hours=1)
            parsed = parse_message(device.measure(now), device_id=device.device_id, now=later)
            assert parsed.rejections == [], (device, parsed.rejections)
            assert [r.metric for _, r in parsed.readings] == list(device.metrics)
            at = parsed.readings[0][1].measured_at
            assert last is None or at > last, "one measurement per instant and device"
            last = at
            for _, r in parsed.readings:
                if r.metric == "heart_rate":
                    highest_hr = max(highest_hr, r.value)
                if r.metric == "spo2":
                    lowest_spo2 = min(lowest_spo2, r.value)
    assert highest_hr > 120, "abnormal devices have tachycardia episodes"
    assert lowest_spo2 < 90, "and desaturations"


def test_fleet_is_reproducible_and_checks_its_arguments() -> None:
    a = [d.measure(NOW) for d in build_fleet(6, seed=3)]
    b = [d.measure(NOW) for d in build_fleet(6, seed=3)]
    assert a == b
    assert {d.kind for d in build_fleet(6)} == set(DEFAULT_KINDS)  # ECG recorders on request
    with pytest.raises(ValueError):
        build_fleet(1, kinds=["toaster"])
    with pytest.raises(ValueError):
        build_fleet(0)
    with pytest.raises(ValueError):
        build_fleet(2, id_prefix="bad prefix ")
    with pytest.raises(ValueError):
        build_fleet(2, abnormal_fraction=1.5)


def test_simulated_ecg_strips_are_valid_and_abnormal_devices_record_af() -> None:
    fleet = build_fleet(4, kinds=["ecg_recorder"], abnormal_fraction=1.0, seed=2)
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for device in fleet:
        for i in range(6):
            parsed = parse_message(device.measure(NOW + timedelta(minutes=i)), device_id=device.device_id,
                                   now=NOW + timedelta(hours=1))
            assert parsed.rejections == [] and parsed.readings == [], parsed.rejections
            [(_, strip)] = parsed.strips
            assert strip.duration_s == 30.0 and strip.sample_rate_hz == 300
            seen.add((strip.interpretation or "", strip.lead_names))
    interpretations = {i for i, _ in seen}
    assert interpretations == {"sinus_rhythm", "atrial_fibrillation"}
    assert {leads for _, leads in seen} == {("I",), ("I", "II", "III", "aVR", "aVL", "aVF")}


def test_simulate_sends_ecg_strips_into_the_service(
    db_url: str, topic_prefix: str, make_consumer: Callable[..., RunningService]
) -> None:
    svc = make_consumer()
    args = [RPM_INGEST, "simulate", "--devices", "2", "--kinds", "ecg_recorder", "--rate", "20",
            "--count", "6", "--register", "--api-url", svc.base_url,
            "--client-id", f"sim-ecg-{topic_prefix.split('/')[0]}", "--seed", "5"]
    done = subprocess.run(args, env={**_env(svc, topic_prefix), "RPM_API_TOKEN": svc.token("admin")},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    with psycopg.connect(db_url) as conn:
        count = lambda: conn.execute("SELECT count(*) FROM ecg_strips").fetchone()[0]  # noqa: E731
        wait_until(lambda: count() == 6, 30, "six simulated strips stored")
    assert dead_letters(db_url) == []


def _env(svc: RunningService, prefix: str) -> dict[str, str]:
    s = svc.services.settings
    assert s.mqtt_url is not None
    return {
        **os.environ,
        "RPM_MQTT_URL": s.mqtt_url,
        "RPM_MQTT_TOPIC_PREFIX": prefix,
        "RPM_DATA_DIR": str(s.data_dir),
        "RPM_LOG_LEVEL": "WARNING",
    }


def test_simulate_registers_and_publishes_into_the_service(
    db_url: str, topic_prefix: str, make_consumer: Callable[..., RunningService]
) -> None:
    svc = make_consumer()
    token = svc.token("admin")
    args = [RPM_INGEST, "simulate", "--devices", "12", "--rate", "300", "--count", "120", "--register",
            "--api-url", svc.base_url, "--client-id", f"sim-{topic_prefix.split('/')[0]}", "--seed", "5"]
    done = subprocess.run(args, env={**_env(svc, topic_prefix), "RPM_API_TOKEN": token},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["published"] == 120 and report["acknowledged"] == 120 and report["refused"] == 0
    fleet = build_fleet(12, seed=5)
    expected = sum(len(fleet[i % 12].metrics) for i in range(120))
    wait_until(lambda: count_readings(db_url) == expected, 30, f"{expected} simulated readings stored")
    assert dead_letters(db_url) == []
    # Registering again is harmless.
    env = {**_env(svc, topic_prefix), "RPM_API_TOKEN": token}
    again = subprocess.run([*args[:-2], "--count", "1"], env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr


def test_simulate_stops_cleanly_on_sigterm(
    db_url: str, topic_prefix: str, make_consumer: Callable[..., RunningService]
) -> None:
    svc = make_consumer()
    process = subprocess.Popen([RPM_INGEST, "simulate", "--rate", "50", "--client-id", "sim-term"],
                               env=_env(svc, topic_prefix), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    # Unregistered devices: their readings are dead-lettered, which shows the simulator is running.
    wait_until(lambda: len(dead_letters(db_url)) > 0, 30, "the simulator publishing")
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["published"] > 0 and report["acknowledged"] == report["published"]


@pytest.mark.parametrize(
    "args",
    [["--kinds", "toaster"], ["--devices", "0"], ["--rate", "0"], ["--register"],
     ["--id-prefix", "bad prefix"], ["--url", "http://example.org"]],
)
def test_simulate_refuses_bad_arguments(args: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "RPM_MQTT_URL": "mqtt://127.0.0.1:1", "RPM_DATA_DIR": str(tmp_path)}
    env.pop("RPM_API_TOKEN", None)
    done = subprocess.run([RPM_INGEST, "simulate", "--count", "1", *args], env=env, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Error" in done.stderr and "Traceback" not in done.stderr

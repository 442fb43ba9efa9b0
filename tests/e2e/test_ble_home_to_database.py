"""The whole device path: emulated BLE devices -> production bleak collector -> gateway's durable
queue -> real Mosquitto -> the service's MQTT consumer -> PostgreSQL.

The devices' clocks are wrong on purpose (a cuff a day fast, meters never set): the readings must
still land at the right time, once each, with the device's own time kept.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from devices.ble.emulated.home import home_devices, run_emulated_home
from tests.support.service import RunningService

WANTED = {
    "heart_rate",
    "systolic_bp",
    "diastolic_bp",
    "spo2",
    "body_temperature",
    "body_weight",
    "blood_glucose",
}


def register_home(admin: httpx.Client, home: int) -> str:
    patient = admin.post("/v1/patients", json={"mrn": f"HOME-{home}", "display_name": "Home Patient"})
    assert patient.status_code == 201, patient.text
    patient_id: str = patient.json()["id"]
    since = (datetime.now(UTC) - timedelta(days=30)).isoformat()
    for device in home_devices(home):
        r = admin.post(
            "/v1/devices",
            json={
                "id": device.device_id,
                "type": device.type,
                "manufacturer": device.manufacturer,
                "model": device.model,
            },
        )
        assert r.status_code == 201, r.text
        r = admin.put(
            f"/v1/devices/{device.device_id}/assignment", json={"patient_id": patient_id, "since": since}
        )
        assert r.status_code == 200, r.text
    return patient_id


@pytest.fixture
def home_running(service: RunningService, tmp_path: Path) -> Iterator[None]:
    """Run one emulated home + gateway in a thread of its own until the test ends."""
    settings = service.services.settings
    assert settings.mqtt_url is not None
    loop = asyncio.new_event_loop()
    task: asyncio.Task[None] | None = None

    def run() -> None:
        nonlocal task
        asyncio.set_event_loop(loop)
        task = loop.create_task(
            run_emulated_home(
                settings.mqtt_url or "",
                data_dir=tmp_path / "gateway",
                home=7,
                topic_prefix=settings.mqtt_topic_prefix,
                measure_every_s=1.0,
                seed=7,
            )
        )
        try:
            loop.run_until_complete(task)
        except asyncio.CancelledError:
            pass

    thread = threading.Thread(target=run, name="emulated-home", daemon=True)
    yield thread.start()
    if task is not None:
        loop.call_soon_threadsafe(task.cancel)
    thread.join(timeout=30)
    assert not thread.is_alive(), "the emulated home did not stop"


def test_emulated_home_readings_reach_the_database_once(service: RunningService, home_running: None) -> None:
    admin = service.client(service.token("admin"))
    patient_id = register_home(admin, 7)
    deadline = time.monotonic() + 120
    seen: set[str] = set()
    while time.monotonic() < deadline and not WANTED <= seen:
        r = admin.get(
            f"/v1/patients/{patient_id}/readings",
            params={"since": (datetime.now(UTC) - timedelta(days=3)).isoformat()},
        )
        seen = {x["metric"] for x in r.json()["readings"]}
        time.sleep(1)
    assert WANTED <= seen, f"metrics that arrived: {sorted(seen)}"

    with service.services.transaction() as conn:
        rows = conn.execute(
            "SELECT metric, measured_at, device_time, source, gateway_id, received_at FROM readings"
        ).fetchall()
        letters = conn.execute("SELECT reason FROM dead_letters").fetchall()
        batteries = conn.execute("SELECT count(*) FROM devices WHERE battery_level IS NOT NULL").fetchone()
    assert letters == [], letters
    assert batteries is not None and batteries[0] > 0, "battery levels read by the gateway arrive"
    now = datetime.now(UTC)
    for metric, measured_at, _device_time, source, gateway_id, received_at in rows:
        assert source == "ble" and gateway_id == "home-hub-7"
        # corrected to the gateway's clock: never in the future, never a day off like the cuff
        assert measured_at <= received_at + timedelta(seconds=5), metric
        assert measured_at > now - timedelta(hours=1), (metric, measured_at)
    # the cuff's clock runs a day fast: its own time is kept next to the corrected one
    cuff = [d for m, _, d, *_ in rows if m == "systolic_bp" and d is not None]
    assert cuff and all(d - now > timedelta(hours=20) for d in cuff)

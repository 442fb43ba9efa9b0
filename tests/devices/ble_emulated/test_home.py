"""An emulated home end to end as far as the broker: devices -> bleak collector -> gateway queue
-> real Mosquitto, with every message valid under the MQTT contract."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from devices.ble.emulated.home import home_devices, run_emulated_home
from devices.gateway.runner import Gateway
from devices.message import parse_message
from tests.support.emulated_ble import run, until
from tests.support.gateway import Subscriber

METRICS_BY_TYPE = {
    "heart_rate_monitor": {"heart_rate"},
    "blood_pressure_monitor": {"systolic_bp", "diastolic_bp", "mean_arterial_pressure", "heart_rate"},
    "pulse_oximeter": {"spo2", "heart_rate"},
    "thermometer": {"body_temperature"},
    "weight_scale": {"body_weight"},
    "glucose_meter": {"blood_glucose"},
}


def test_emulated_home_publishes_every_device_per_contract(
    tmp_path: Path, mqtt_url: str, topic_prefix: str
) -> None:
    devices = home_devices(7)
    assert len({d.device_id for d in devices}) == 6

    async def scenario() -> None:
        gateways: list[Gateway] = []
        with Subscriber(mqtt_url, f"{topic_prefix}/+/readings") as sub:
            home = asyncio.create_task(
                run_emulated_home(
                    mqtt_url, data_dir=tmp_path, home=7, topic_prefix=topic_prefix,
                    profile="hypertensive", measure_every_s=0.5, on_ready=gateways.append,
                )
            )
            try:
                await until(lambda: _all_metrics(sub), timeout=30, what="all devices")
            finally:
                home.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await home
            assert gateways and gateways[0].settings.gateway_id == "home-hub-7"
            for topic, payload in sub.messages:
                device_id = topic.split("/")[-2]
                assert payload["gateway_id"] == "home-hub-7"
                parsed = parse_message(payload, device_id=device_id, now=datetime.now(UTC))
                assert parsed.rejections == [], parsed.rejections
                bp = [r for _, r in parsed.readings if r.metric == "systolic_bp"]
                assert all(r.value > 150 for r in bp)  # the hypertensive profile

    def _all_metrics(sub: Subscriber) -> bool:
        seen: dict[str, set[str]] = {}
        for r in sub.readings():
            seen.setdefault(r["device_id"], set()).add(r["metric"])
        return all(seen.get(d.device_id, set()) >= METRICS_BY_TYPE[d.type] for d in devices)

    run(scenario(), timeout=60)


def test_the_collector_business_logic_does_not_import_bleak() -> None:
    code = (
        "import sys\n"
        "import devices.ble.collector_api, devices.ble.collector_loop, devices.ble.collector_session\n"
        "import devices.ble.collector_records, devices.ble.collector_transfer\n"
        "import devices.gateway.pipeline, devices.gateway.queue_store, devices.gateway.clock\n"
        "assert 'bleak' not in sys.modules, 'bleak imported'\n"
        "assert 'bumble' not in sys.modules, 'bumble imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

"""Live measurements, clocks, battery, allow-list and several devices at once: the production
collector over the bumble bleak backend, into the real gateway sink and SQLite queue."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from devices.ble.emulated.home import EmulatedHome
from devices.ble.emulated.live_devices import HeartRateStrap, PulseOximeter, Scale, Thermometer
from devices.ble.emulated.peripheral import DeviceClock
from devices.ble.emulated.record_devices import GlucoseMeter
from devices.message import parse_message
from tests.support.emulated_ble import Harness, collecting, run, until

STRAP = "F1:00:00:00:00:01"
OTHER_STRAP = "F1:00:00:00:00:09"
OXIMETER = "F1:00:00:00:00:03"
THERMOMETER = "F1:00:00:00:00:04"
SCALE = "F1:00:00:00:00:05"
METER = "F1:00:00:00:00:06"
SLACK = timedelta(seconds=10)


def at(reading: dict[str, object], key: str = "measured_at") -> datetime:
    return datetime.fromisoformat(str(reading[key]))


def test_heart_rate_notifications_survive_garbage_and_truncated_values(tmp_path: Path) -> None:
    strap = HeartRateStrap(STRAP, "Strap")

    async def scenario() -> None:
        async with collecting(tmp_path, strap) as h:
            await until(lambda: strap.subscribed(strap.measurement), what="subscription")
            strap.faults.truncate_next = 1
            await strap.send_heart_rate(300)  # 16-bit value, cut to its flags octet
            strap.faults.garbage_next = 3
            for bpm in (61, 62, 63):
                await strap.send_heart_rate(bpm)
            for bpm in (72, 73):
                await strap.send_heart_rate(bpm)
            await until(lambda: _has_values(h.readings(), {72.0, 73.0}), what="good values")
            session = h.collector.devices[STRAP].session
            assert session is not None and session.stats.malformed >= 1
            assert strap.connections_made == 1 and strap.connected
            readings = await h.readings()
            assert {r["device_id"] for r in readings} == {"F1000000000" + "1"}
            assert all(r["unit"] == "/min" and r["source"] == "ble" for r in readings)

    run(scenario())


async def _has_values(readings: object, wanted: set[float]) -> bool:
    got = {r["value"] for r in await readings}  # type: ignore[misc]
    return wanted <= got


def test_streaming_values_are_sampled_not_all_kept(tmp_path: Path) -> None:
    strap = HeartRateStrap(STRAP, "Strap")

    async def scenario() -> None:
        async with collecting(tmp_path, strap, continuous_interval=timedelta(hours=1)) as h:
            await until(lambda: strap.subscribed(strap.measurement), what="subscription")
            for bpm in (70, 71, 72, 73, 74):
                await strap.send_heart_rate(bpm)
            await until(lambda: _has_values(h.readings(), {70.0}), what="first sample")
            await strap.drop_link()  # the session ends; everything it received was handled
            await until(lambda: strap.connections_made == 2, what="reconnect")
            assert [r["value"] for r in await h.readings()] == [70.0]

    run(scenario())


def test_unset_and_wrong_clocks_are_corrected_keeping_device_time(tmp_path: Path) -> None:
    home = ZoneInfo("America/New_York")
    thermometer = Thermometer(
        THERMOMETER, "Thermo", current_time="read",
        clock=DeviceClock(skew=-timedelta(hours=3, minutes=17), tz=home),
    )
    meter = GlucoseMeter(METER, "Meter", current_time="write", clock=DeviceClock(unset=True, tz=home))
    meter.measure(110.0, ago=timedelta(minutes=5))
    oximeter = PulseOximeter(OXIMETER, "Oxi", clock=DeviceClock(unset=True, tz=home))

    async def scenario() -> None:
        started = datetime.now(UTC)
        async with collecting(
            tmp_path, thermometer, meter, oximeter, tz=home, record_poll_interval=0.3
        ) as h:
            await until(lambda: meter.clock.was_set, what="meter clock set")
            await until(lambda: thermometer.subscribed(thermometer.measurement), what="thermo")
            await thermometer.measure(37.2)
            await until(lambda: oximeter.subscribed(oximeter.spot_check), what="oximeter")
            await oximeter.measure(97.0, 66.0)
            meter.measure(140.0)
            await until(lambda: _count(h.readings(), 5), what="readings")
            by_metric = {(r["metric"], r["value"]): r for r in await h.readings()}

            temp = by_metric[("body_temperature", 37.2)]
            assert "clock_corrected" in temp["status"]
            assert abs(at(temp) - datetime.now(UTC)) < SLACK
            assert abs(at(temp, "device_time") - (at(temp) - timedelta(hours=3, minutes=17))) < SLACK
            assert at(temp).utcoffset() is not None
            assert not thermometer.clock.was_set  # read-only clock: corrected, not set

            stored = by_metric[("blood_glucose", 0.0011)]  # measured under the unset clock
            assert "clock_corrected" in stored["status"]
            assert abs(at(stored) - (started - timedelta(minutes=5))) < SLACK
            assert at(stored, "device_time") < datetime(2000, 1, 2, tzinfo=UTC)  # the unset clock
            fresh = by_metric[("blood_glucose", 0.0014)]  # measured after the gateway set it
            assert "device_time" not in fresh and fresh["status"] == []
            assert abs(at(fresh) - datetime.now(UTC)) < SLACK

            spot = by_metric[("spo2", 97.0)]
            assert set(spot["status"]) >= {"device_clock_not_set", "time_estimated"}
            assert abs(at(spot) - datetime.now(UTC)) < SLACK

    run(scenario())


async def _count(readings: object, n: int) -> bool:
    return len(await readings) >= n  # type: ignore[misc]


def test_stored_measurements_indicated_on_connection_arrive_in_order(tmp_path: Path) -> None:
    scale = Scale(SCALE, "Scale", current_time="write")

    async def scenario() -> None:
        for n, kilograms in enumerate((80.0, 79.5, 79.0)):
            assert not await scale.measure(kilograms, ago=timedelta(days=3 - n))  # stored
        async with collecting(tmp_path, scale) as h:
            await until(lambda: _count(h.readings(), 3), what="stored weights")
            readings = await h.readings()
            assert [r["value"] for r in readings] == [80.0, 79.5, 79.0]
            assert at(readings[0]) < at(readings[1]) < at(readings[2])
            assert scale.pending == []

    run(scenario())


def test_only_paired_devices_are_connected(tmp_path: Path) -> None:
    mine, neighbours = HeartRateStrap(STRAP, "Mine"), HeartRateStrap(OTHER_STRAP, "Theirs")

    async def scenario() -> None:
        async with collecting(tmp_path, mine, neighbours, allow=frozenset({STRAP})) as h:
            await until(lambda: mine.subscribed(mine.measurement), what="mine")
            await mine.send_heart_rate(64)
            await until(lambda: _count(h.readings(), 1), what="reading")
            assert neighbours.connections_made == 0
            assert OTHER_STRAP not in h.collector.devices

    run(scenario())


def test_a_whole_home_at_once_with_battery_levels(tmp_path: Path) -> None:
    async def scenario() -> None:
        home = EmulatedHome(3, tz=UTC)
        home.strap.battery_level = 9
        async with collecting(tmp_path, *home.peripherals, record_poll_interval=0.3) as h:
            await until(lambda: all(p.connected for p in home.peripherals), what="all connected")
            await until(lambda: home.strap.subscribed(home.strap.measurement), what="strap")
            await until(lambda: home.scale.subscribed(home.scale.measurement), what="scale")
            await until(lambda: home.thermometer.subscribed(home.thermometer.measurement), what="th")
            await until(lambda: home.oximeter.subscribed(home.oximeter.spot_check), what="oxi")
            await until(lambda: home.cuff.subscribed(home.cuff.measurement), what="cuff")
            await home.strap.send_heart_rate(70)
            await home.cuff.measure(120.0, 80.0, 70.0)
            await home.oximeter.measure(98.0, 70.0)
            await home.thermometer.measure(36.9)
            await home.scale.measure(70.0)
            home.glucose.measure(100.0)
            await until(lambda: h.queue.last_sequence(home.glucose.address, "glucose"), what="glu")
            readings = await h.readings()
            assert {r["device_id"] for r in readings} == {d.device_id for d in home.info}
            assert h.queue.store.battery(home.strap.address) == 9
            strap_readings = [r for r in readings if r["device_id"] == home.info[0].device_id]
            assert "device_battery_low" in strap_readings[0]["status"]
            # every queued message is valid under the MQTT contract's parser
            for row in await h.queue.peek(0, 1000):
                parsed = parse_message(
                    {"gateway_id": "hub", "readings": row.readings},
                    device_id=row.device_id, now=datetime.now(UTC),
                )
                assert parsed.rejections == [] and len(parsed.readings) == len(row.readings)

    run(scenario())


def test_an_adapter_that_is_off_is_retried_until_it_is_on(tmp_path: Path) -> None:
    strap = HeartRateStrap(STRAP, "Strap")

    async def scenario() -> None:
        async with collecting(tmp_path, strap, adapter_on=False) as h:
            await asyncio.sleep(0.5)  # scanning fails a few times meanwhile
            assert strap.connections_made == 0
            await h.adapter.power_on()
            await until(lambda: strap.subscribed(strap.measurement), what="collected after all")
            await strap.send_heart_rate(66)
            await until(lambda: _count(h.readings(), 1), what="reading")

    run(scenario())


def test_a_steady_stream_does_not_hold_up_setting_the_clock(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devices.ble.collector_session")
    oximeter = PulseOximeter(
        OXIMETER, "Oxi", current_time="write", clock=DeviceClock(unset=True, tz=UTC)
    )

    async def scenario() -> None:
        stream = asyncio.create_task(oximeter.stream(lambda: (97.0, 64.0), 0.01))
        try:
            async with collecting(tmp_path, oximeter) as h:
                await until(lambda: oximeter.clock.was_set, what="clock set")
                # The device has the new time as soon as the write reaches it; the collector takes
                # it as its reference once the write returns (a value in between keeps the old one).
                await until(lambda: "device clock set" in caplog.text, what="the collector's reference")
                await oximeter.measure(96.0, 65.0)
                readings = await _spot_checks(h)
                assert readings and "time_estimated" not in readings[0]["status"]
        finally:
            stream.cancel()

    async def _spot_checks(h: Harness) -> list[dict[str, Any]]:
        await until(lambda: _has_values(h.readings(), {96.0}), what="spot-check")
        return [r for r in await h.readings() if r["value"] == 96.0]

    run(scenario())

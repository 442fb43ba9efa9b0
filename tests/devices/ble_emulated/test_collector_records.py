"""Stored records through RACP: the production collector (real bleak client over the bumble
backend) against emulated glucose meters and blood-pressure cuffs, into the real SQLite queue."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest

from devices.ble.collector_transfer import Outcome
from devices.ble.emulated import encoding
from devices.ble.emulated.numbering import RecordNumbering
from devices.ble.emulated.record_devices import BloodPressureCuff, GlucoseMeter
from tests.support.emulated_ble import Harness, collecting, run, until

METER = "F1:00:00:00:00:06"
CUFF = "F1:00:00:00:00:02"
# RACP requests, as literals (GLS: op code, operator, filter type 0x01 = sequence number)
ALL_RECORDS = bytes.fromhex("0101")
ABORT = bytes.fromhex("0300")
LAST_RECORD = bytes.fromhex("0106")


def minutes(n: int) -> timedelta:
    return timedelta(minutes=n)


def from_sequence(n: int) -> bytes:
    return bytes((0x01, 0x03, 0x01)) + n.to_bytes(2, "little")


def glucose_values(readings: list[dict[str, object]]) -> list[float]:
    """mg/dL of the queued glucose readings (the wire keeps the device's kg/L)."""
    return [round(float(r["value"]) * 100_000, 3) for r in readings if r["metric"] == "blood_glucose"]  # type: ignore[arg-type]


async def outcome(h: Harness, address: str, stream: str) -> Outcome | None:
    state = h.collector.devices.get(address)
    if state is None or state.session is None:
        return None
    return state.session.stats.transfers.get(stream)


def test_first_sync_fetches_all_records_then_only_new_ones(tmp_path: Path) -> None:
    meter = GlucoseMeter(METER, "Meter")
    for n, value in enumerate((95.0, 130.0, 180.0)):
        meter.measure(value, ago=minutes(30 - n))

    async def scenario() -> None:
        async with collecting(tmp_path, meter) as h:
            await until(lambda: h.queue.last_sequence(METER, "glucose"), what="cursor")
            assert glucose_values(await h.readings()) == [95.0, 130.0, 180.0]
            assert await h.queue.last_sequence(METER, "glucose") == 3
            assert meter.racp.requests == [ALL_RECORDS]

            meter.measure(101.0, ago=minutes(2))
            meter.measure(102.0, ago=minutes(1))
            await meter.drop_link()  # the meter goes to sleep; next time only the new records
            await until(lambda: meter.connections_made == 2, what="reconnect")
            await until(lambda: _cursor_is(h, 5), what="cursor 5")
            assert meter.racp.requests == [ALL_RECORDS, from_sequence(4)]
            assert glucose_values(await h.readings()) == [95.0, 130.0, 180.0, 101.0, 102.0]
            assert (await h.queue.stats()).duplicates == 0

    run(scenario())


async def _cursor_is(h: Harness, value: int) -> bool:
    return await h.queue.last_sequence(METER, "glucose") == value


def test_no_records_found_is_a_normal_end(tmp_path: Path) -> None:
    meter = GlucoseMeter(METER, "Meter")

    async def scenario() -> None:
        async with collecting(tmp_path, meter) as h:
            await until(lambda: outcome(h, METER, "glucose"), what="transfer outcome")
            assert await outcome(h, METER, "glucose") is Outcome.NO_RECORDS
            assert await h.readings() == []
            assert await h.queue.last_sequence(METER, "glucose") is None
            assert meter.connected  # the session goes on listening

    run(scenario())


def test_procedure_not_completed_keeps_the_cursor_and_loses_nothing(tmp_path: Path) -> None:
    meter = GlucoseMeter(METER, "Meter")
    for n, value in enumerate((90.0, 91.0, 92.0, 93.0)):
        meter.measure(value, ago=minutes(10 - n))
    meter.faults.racp_fail_after_records = 2

    async def scenario() -> None:
        async with collecting(tmp_path, meter, record_poll_interval=0.3) as h:
            await until(lambda: _cursor_is(h, 4), what="complete transfer")
            assert meter.racp.requests[:2] == [ALL_RECORDS, ALL_RECORDS]
            assert glucose_values(await h.readings()) == [90.0, 91.0, 92.0, 93.0]
            stats = await h.queue.stats()
            assert stats.readings == 4 and stats.duplicates == 2  # the re-sent first two

    run(scenario())


def test_link_dropped_mid_transfer_then_everything_arrives_once(tmp_path: Path) -> None:
    meter = GlucoseMeter(METER, "Meter")
    for n, value in enumerate((70.0, 80.0, 90.0, 100.0, 110.0)):
        meter.measure(value, ago=minutes(10 - n))
    meter.faults.drop_link_after_records = 2

    async def scenario() -> None:
        async with collecting(tmp_path, meter) as h:
            await until(lambda: _cursor_is(h, 5), what="cursor 5")
            assert meter.connections_made == 2
            assert meter.racp.requests == [ALL_RECORDS, ALL_RECORDS]
            assert glucose_values(await h.readings()) == [70.0, 80.0, 90.0, 100.0, 110.0]

    run(scenario())


def test_stalled_transfer_is_aborted_and_retried(tmp_path: Path) -> None:
    meter = GlucoseMeter(METER, "Meter")
    for n, value in enumerate((120.0, 121.0, 122.0)):
        meter.measure(value, ago=minutes(10 - n))
    meter.faults.racp_stall_after_records = 1

    async def scenario() -> None:
        async with collecting(tmp_path, meter, racp_timeout=0.4, record_poll_interval=0.5) as h:
            await until(lambda: _cursor_is(h, 3), what="cursor 3")
            assert meter.racp.requests[:3] == [ALL_RECORDS, ABORT, ALL_RECORDS]
            assert glucose_values(await h.readings()) == [120.0, 121.0, 122.0]

    run(scenario())


def test_garbage_and_truncated_records_are_skipped_not_fatal(tmp_path: Path) -> None:
    meter = GlucoseMeter(METER, "Meter")
    meter.measure(99.0, ago=minutes(5))  # sequence 1
    good = encoding.glucose(2, None, 150.0)
    meter.add_raw_record(2, good[:7])  # cut inside the Base Time
    meter.add_raw_record(3, bytes.fromhex("ff"))  # garbage
    meter.next_sequence = 4
    meter.measure(101.0, meal=1)  # sequence 4, with context

    async def scenario() -> None:
        async with collecting(tmp_path, meter) as h:
            await until(lambda: _cursor_is(h, 4), what="cursor 4")
            readings = await h.readings()
            assert glucose_values(readings) == [99.0, 101.0]
            assert "meal_preprandial" in readings[-1]["status"]
            state = h.collector.devices[METER]
            assert state.session is not None and state.session.stats.malformed == 2
            assert meter.connected

    run(scenario())


def test_blood_pressure_records_and_a_live_measurement(tmp_path: Path) -> None:
    cuff = BloodPressureCuff(CUFF, "Cuff", first_sequence=41)

    async def scenario() -> None:
        async with collecting(tmp_path, cuff, record_poll_interval=0.3) as h:
            await cuff.measure(128.0, 84.0, 70.0, ago=minutes(40))
            await cuff.measure(135.0, 88.0, 72.0, ago=minutes(20))
            await until(lambda: h.queue.last_sequence(CUFF, "blood_pressure"), what="cursor")
            await until(lambda: cuff.subscribed(cuff.measurement), what="subscribed")
            await cuff.measure(150.0, 95.0, 80.0, status=0x0004)  # live, irregular pulse
            await until(lambda: _bp_cursor(h, 43), what="cursor 43")
            messages = await h.messages()
            panels = [
                {r["metric"]: r["value"] for r in message}
                for message in messages
            ]
            assert [p["systolic_bp"] for p in panels] == [128.0, 135.0, 150.0]
            assert all(set(p) == {"systolic_bp", "diastolic_bp", "mean_arterial_pressure", "heart_rate"}
                       for p in panels)
            assert "irregular_pulse" in messages[-1][0]["status"]
            assert (await h.queue.stats()).duplicates == 4  # the live panel again, from storage

    run(scenario())


async def _bp_cursor(h: Harness, value: int) -> bool:
    return await h.queue.last_sequence(CUFF, "blood_pressure") == value


def test_a_meter_that_restarted_its_numbering_is_read_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    meter = GlucoseMeter(METER, "Meter")
    for n, value in enumerate((90.0, 95.0, 99.0)):
        meter.measure(value, ago=minutes(60 - n))

    async def scenario() -> None:
        async with collecting(tmp_path, meter) as h:
            await until(lambda: _cursor_is(h, 3), what="cursor 3")
            await meter.drop_link()
            meter.records.clear()  # factory reset: memory wiped, numbering from 1 again
            meter.next_sequence = 1
            meter.measure(140.0, ago=minutes(5))
            meter.measure(145.0, ago=minutes(4))
            await until(lambda: meter.connections_made == 2, what="reconnect")
            await until(lambda: _cursor_is(h, 2), what="cursor back to 2")
            assert meter.racp.requests[1:] == [from_sequence(4), LAST_RECORD, ALL_RECORDS]
            assert glucose_values(await h.readings()) == [90.0, 95.0, 99.0, 140.0, 145.0]

    with caplog.at_level(logging.WARNING, logger="devices.ble"):
        run(scenario())
    assert "record numbers restarted (newest 2, last kept 3)" in caplog.text  # a real reset is news


def test_a_meter_switched_off_and_on_again_is_no_reset(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A meter keeps numbering across power cycles: after a restart (the gateway's too) the
    collector reads on from its cursor and finds no reset to report."""
    numbers = tmp_path / "numbers.json"
    meter = GlucoseMeter(METER, "Meter", numbering=RecordNumbering(numbers))
    meter.measure(90.0, ago=minutes(30))
    meter.measure(95.0, ago=minutes(20))

    async def scenario() -> None:
        async with collecting(tmp_path, meter) as h:
            await until(lambda: _cursor_is(h, 2), what="cursor 2")
        # both start again: the meter's memory is empty, its numbering carries on
        again = GlucoseMeter(METER, "Meter", numbering=RecordNumbering(numbers))
        again.measure(99.0, ago=minutes(5))
        async with collecting(tmp_path, again, record_poll_interval=0.3) as h:
            await until(lambda: _cursor_is(h, 3), what="cursor 3")
            await until(lambda: LAST_RECORD in again.racp.requests, what="a poll with nothing new")
            assert again.racp.requests[0] == from_sequence(3)
            assert glucose_values(await h.readings()) == [90.0, 95.0, 99.0]

    with caplog.at_level(logging.INFO, logger="devices.ble"):
        run(scenario())
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text

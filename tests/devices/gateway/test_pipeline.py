"""The gateway sink: observations -> timed, flagged wire readings -> queue (real SQLite)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devices.ble import decode
from devices.ble.collector_api import ClockReference, Observation, RecordCursor
from devices.gateway.clock import ClockPolicy
from devices.gateway.pipeline import GatewaySink, default_device_id
from devices.gateway.queue import AsyncQueue
from devices.gateway.queue_store import QueueStore
from devices.message import parse_message

CUFF = "F0:F1:F2:F3:F4:F5"
RECEIVED = datetime(2026, 11, 25, 10, 0, 5, tzinfo=UTC)
# Blood Pressure Measurement: flags 0x1e (time stamp, pulse, user, status); 128/84/99 mmHg;
# 2026-11-26 10:00:00 (the cuff runs a day fast); pulse 70; user 1; status 0x0004 irregular pulse
BPM = bytes.fromhex("1e" "8000" "5400" "6300" "ea070b1a0a0000" "4600" "01" "0400")


def observation(data: bytes = BPM, *, clock: ClockReference | None = None,
                extra: tuple[str, ...] = ()) -> Observation:
    return Observation(CUFF, "2a35", decode("2a35", data).measurements, RECEIVED, clock, True, extra)


def sink_for(tmp_path: Path, device_ids: dict[str, str] | None = None) -> GatewaySink:
    queue = AsyncQueue(QueueStore(tmp_path / "q.sqlite3", max_bytes=10**7))
    return GatewaySink(queue, ClockPolicy(UTC), now=lambda: RECEIVED, device_ids=device_ids)


def test_a_blood_pressure_panel_travels_as_one_message_with_its_flags(tmp_path: Path) -> None:
    sink = sink_for(tmp_path)
    a_day_fast = ClockReference(
        datetime(2026, 11, 26, 10, 0, 3), datetime(2026, 11, 25, 10, 0, 3, tzinfo=UTC)
    )

    async def scenario() -> None:
        await sink.deliver(
            [observation(clock=a_day_fast, extra=("device_battery_low",))],
            RecordCursor(CUFF, "blood_pressure", 12),
        )
        [row] = await sink._queue.peek(0, 10)  # noqa: SLF001
        assert row.device_id == "F0F1F2F3F4F5" == default_device_id(CUFF)
        assert [r["metric"] for r in row.readings] == [
            "systolic_bp", "diastolic_bp", "mean_arterial_pressure", "heart_rate"
        ]
        for r in row.readings:
            assert r["measured_at"] == "2026-11-25T10:00:00+00:00"
            assert r["device_time"] == "2026-11-26T10:00:00+00:00"
            assert r["status"] == ["irregular_pulse", "device_battery_low", "clock_corrected"]
        parsed = parse_message({"readings": row.readings}, device_id=row.device_id, now=RECEIVED)
        assert parsed.rejections == [] and len(parsed.readings) == 4
        assert await sink.last_sequence(CUFF, "blood_pressure") == 12
        await sink._queue.close()  # noqa: SLF001

    asyncio.run(scenario())


def test_device_ids_can_be_named_and_bad_names_are_refused(tmp_path: Path) -> None:
    sink = sink_for(tmp_path, {CUFF.lower(): "cuff-0042"})
    assert sink.device_id(CUFF) == "cuff-0042"
    assert sink.device_id("F0:00:00:00:00:01") == "F00000000001"
    with pytest.raises(ValueError):
        sink_for(tmp_path / "x", {CUFF: "no spaces allowed"})


def test_values_without_readings_queue_nothing_but_still_move_a_cursor(tmp_path: Path) -> None:
    sink = sink_for(tmp_path)
    # the same measurement with systolic NaN: no panel at all
    nan_panel = bytearray(BPM)
    nan_panel[1:3] = b"\xff\x07"

    async def scenario() -> None:
        await sink.deliver([observation(bytes(nan_panel))])
        rows = await sink._queue.peek(0, 10)  # noqa: SLF001
        assert [r["metric"] for row in rows for r in row.readings] == ["heart_rate"]
        await sink.deliver([], RecordCursor(CUFF, "blood_pressure", 3))
        assert await sink.last_sequence(CUFF, "blood_pressure") == 3
        await sink._queue.close()  # noqa: SLF001

    asyncio.run(scenario())

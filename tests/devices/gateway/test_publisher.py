"""Publishing the queue to a real Mosquitto at QoS 1: contract payloads, PUBACK-gated deletion,
a long broker outage, and a queue that fills up while the broker is away."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

from devices.gateway.queue_store import Entry
from devices.gateway.runner import Gateway
from devices.message import parse_message
from tests.support.emulated_ble import run, until
from tests.support.gateway import Subscriber, drain_gateway, entries, reading
from tests.support.mosquitto import Mosquitto


@contextlib.asynccontextmanager
async def running(gateway: Gateway) -> AsyncIterator[Gateway]:
    task = asyncio.create_task(gateway.run())
    try:
        yield gateway
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def bp_panel(i: int) -> list[dict[str, object]]:
    at = reading(i)["measured_at"]
    return [
        {"metric": m, "value": v, "unit": "mm[Hg]", "measured_at": at, "status": ["irregular_pulse"],
         "source": "ble"}
        for m, v in (("systolic_bp", 131.0), ("diastolic_bp", 85.0), ("mean_arterial_pressure", 100.0))
    ]


def test_readings_are_published_per_contract_and_deleted_after_puback(
    tmp_path: Path, mqtt_url: str, topic_prefix: str
) -> None:
    gateway = drain_gateway(tmp_path, mqtt_url, topic_prefix)

    async def scenario() -> None:
        with Subscriber(mqtt_url, f"{topic_prefix}/+/readings") as sub:
            await gateway.queue.enqueue(
                [Entry("CUFF01", bp_panel(0)), *entries(4, devices=("STRAP1", "STRAP1", "OX:1"))],
                None, now=datetime.now(UTC),
            )
            async with running(gateway):
                got = await asyncio.to_thread(sub.wait_for, 7)
                await until(lambda: _empty(gateway), what="queue empty")
                stats = await gateway.queue.stats()
                assert (stats.messages, stats.published) == (0, 7)
            assert len(got) == 7
            topics = [topic for topic, _ in sub.messages]
            assert topics[0] == f"{topic_prefix}/CUFF01/readings"
            assert set(topics) == {f"{topic_prefix}/{d}/readings" for d in ("CUFF01", "STRAP1", "OX:1")}
            for topic, payload in sub.messages:
                device_id = topic.split("/")[-2]
                assert payload["gateway_id"] == "hub-test" and payload["source"] == "ble"
                assert payload["device_id"] == device_id
                parsed = parse_message(payload, device_id=device_id, now=datetime.now(UTC))
                assert parsed.rejections == []
            panel = sub.messages[0][1]["readings"]
            assert [r["metric"] for r in panel] == ["systolic_bp", "diastolic_bp", "mean_arterial_pressure"]
            # the rows of one device travel together, in order
            assert [len(p["readings"]) for _, p in sub.messages] == [3, 3, 1]
            strap = [r["measured_at"] for r in sub.messages[1][1]["readings"]]
            assert strap == sorted(strap)

    run(scenario())


async def _empty(gateway: Gateway) -> bool:
    return (await gateway.queue.stats()).messages == 0 and gateway.publisher.inflight == 0


def test_long_broker_outage_grows_the_queue_then_drains_in_order_nothing_lost_or_doubled(
    tmp_path: Path,
) -> None:
    """A day of minute readings from two devices queues up while the broker is gone."""
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    gateway = drain_gateway(tmp_path / "hub", broker.url, "home")
    day = 24 * 60

    async def scenario() -> None:
        with Subscriber(broker.url, "home/+/readings", persistent=True) as sub:
            async with running(gateway):
                await gateway.queue.enqueue(entries(10, devices=("A", "B")), None, now=datetime.now(UTC))
                await asyncio.to_thread(sub.wait_for, 10)
                await until(lambda: _empty(gateway), what="first drain")

                await asyncio.to_thread(broker.stop)
                await until(lambda: not gateway.publisher._transport.connected, what="disconnect")  # noqa: SLF001
                sent_before = gateway.publisher.messages_sent
                for hour in range(24):  # readings keep coming in while the broker is away
                    batch = entries(2 * 60, devices=("A", "B"), start=10 + hour * 120)
                    await gateway.queue.enqueue(batch, None, now=datetime.now(UTC))
                    await asyncio.sleep(0)
                assert (await gateway.queue.stats()).readings == 2 * day
                assert gateway.publisher.messages_sent == sent_before  # nothing handed out
                assert gateway.publisher.inflight == 0

                await asyncio.to_thread(broker.start)
                got = await asyncio.to_thread(sub.wait_for, 10 + 2 * day, 60.0)
                await until(lambda: _empty(gateway), timeout=30, what="drained")
            await asyncio.sleep(0.3)
            got = sub.readings()
        keys = [(r["device_id"], r["measured_at"]) for r in got]
        assert len(keys) == len(set(keys)) == 10 + 2 * day  # nothing doubled, nothing lost
        sent = entries(10 + 2 * day, devices=("A", "B"))
        expected = {(e.device_id, e.readings[0]["measured_at"]) for e in sent}
        assert set(keys) == expected
        for device in ("A", "B"):
            times = [r["measured_at"] for r in got if r["device_id"] == device]
            assert times == sorted(times)  # in order, per device

    try:
        run(scenario(), timeout=120)
    finally:
        broker.stop()


def test_full_queue_keeps_and_publishes_the_newest(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    gateway = drain_gateway(tmp_path / "hub", broker.url, "full", max_queue_bytes=120 * 50)
    sent = entries(200)

    async def scenario() -> None:
        with Subscriber(broker.url, "full/+/readings", persistent=True) as sub:
            await asyncio.to_thread(broker.stop)
            async with running(gateway):
                await gateway.queue.enqueue(sent, None, now=datetime.now(UTC))
                stats = await gateway.queue.stats()
                assert stats.dropped > 0 and stats.bytes <= stats.max_bytes
                assert stats.readings + stats.dropped == 200
                await asyncio.to_thread(broker.start)
                got = await asyncio.to_thread(sub.wait_for, stats.readings)
                await until(lambda: _empty(gateway), timeout=30, what="drained")
            await asyncio.sleep(0.2)
            got = sub.readings()
        newest = [e.readings[0]["measured_at"] for e in sent[-stats.readings:]]
        assert [r["measured_at"] for r in got] == newest

    try:
        run(scenario(), timeout=60)
    finally:
        broker.stop()

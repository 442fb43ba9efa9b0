"""Home gateway throughput: queue commits per second, and how fast a backlog drains to a broker.

* ``enqueue``: one reading per committed transaction (what a live notification costs), with
  ``synchronous=FULL`` (the default: fsync per commit) and ``NORMAL`` for comparison;
* ``drain``: a backlog (e.g. after days offline) published at QoS 1 to a real broker and deleted
  on PUBACK, readings and MQTT messages per second.

Run: ``.venv/bin/python bench/gateway_queue.py [--broker mqtt://127.0.0.1:1883] [--backlog 20000]``
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from devices.gateway.queue_store import Entry, QueueStore, Synchronous
from devices.gateway.runner import Gateway, GatewaySettings
from devices.mqtt.options import broker_options

BASE = datetime(2026, 11, 1, tzinfo=UTC)


def reading(i: int) -> dict[str, Any]:
    return {
        "metric": "heart_rate",
        "value": float(50 + i % 70),
        "unit": "/min",
        "measured_at": (BASE + timedelta(seconds=i)).isoformat(),
        "status": [],
        "source": "ble",
    }


def bench_enqueue(n: int, synchronous: Synchronous) -> float:
    with tempfile.TemporaryDirectory() as directory:
        store = QueueStore(Path(directory) / "q.sqlite3", max_bytes=2**30, synchronous=synchronous)
        now = datetime.now(UTC)
        started = time.perf_counter()
        for i in range(n):
            store.enqueue([Entry("DEV1", [reading(i)])], now=now)
        elapsed = time.perf_counter() - started
        store.close()
    return n / elapsed


async def bench_drain(broker: str, backlog: int, devices: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as directory:
        settings = GatewaySettings(
            gateway_id="bench-hub",
            data_dir=Path(directory),
            broker=broker_options(broker, client_id=f"bench-{uuid.uuid4().hex[:8]}", protocol="3.1.1"),
            topic_prefix=f"bench-{uuid.uuid4().hex[:8]}",
            tz=UTC,
        )
        gateway = Gateway(settings, None)
        batch = [Entry(f"DEV{i % devices:03d}", [reading(i)]) for i in range(backlog)]
        await gateway.queue.enqueue(batch, None, now=datetime.now(UTC))
        task = asyncio.create_task(gateway.run())
        started = time.perf_counter()
        await gateway.publisher.wait_drained()
        elapsed = time.perf_counter() - started
        messages = gateway.publisher.messages_sent
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
    return backlog / elapsed, messages / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--backlog", type=int, default=20000)
    parser.add_argument("--devices", type=int, default=6)
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}")
    for mode in ("FULL", "NORMAL"):
        rate = bench_enqueue(args.commits, mode)  # type: ignore[arg-type]
        print(f"enqueue, one reading per commit, synchronous={mode:6}: {rate:10,.0f} commits/s")
    readings, messages = asyncio.run(bench_drain(args.broker, args.backlog, args.devices))
    print(
        f"drain {args.backlog} readings of {args.devices} devices to {args.broker}: "
        f"{readings:,.0f} readings/s in {messages:,.0f} messages/s"
    )


if __name__ == "__main__":
    main()

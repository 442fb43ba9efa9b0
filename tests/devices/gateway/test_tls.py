"""mqtts:// with a per-gateway client certificate, and a broker that refuses the gateway's
credentials (readings stay queued until it is let in)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
from pathlib import Path

from devices.gateway.runner import Gateway, GatewaySettings
from devices.mqtt.options import broker_options
from tests.support.emulated_ble import run
from tests.support.gateway import Subscriber, entries
from tests.support.mosquitto import Mosquitto
from tests.support.pki import make_pki
from tests.support.service import free_port


def tls_broker(root: Path) -> tuple[Mosquitto, int]:
    pki = root / "pki"
    make_pki(pki)
    plain, secure = free_port(), free_port()
    listener = (
        ("user root\n" if os.geteuid() == 0 else "")
        + "per_listener_settings true\n"
        f"listener {plain} 127.0.0.1\nallow_anonymous true\n"
        f"listener {secure} 127.0.0.1\nallow_anonymous false\n"
        f"cafile {pki}/ca.crt\ncertfile {pki}/server.crt\nkeyfile {pki}/server.key\n"
        f"require_certificate true\nuse_identity_as_username true\n"
    )
    return Mosquitto(root / "broker", port=plain, listener=listener), secure


def test_publishing_over_tls_with_a_client_certificate(tmp_path: Path) -> None:
    broker, secure = tls_broker(tmp_path)
    pki = tmp_path / "pki"
    settings = GatewaySettings(
        gateway_id="home-hub-tls",
        data_dir=tmp_path / "hub",
        broker=broker_options(
            f"mqtts://127.0.0.1:{secure}", client_id="home-hub-tls", protocol="3.1.1",
            ca_file=pki / "ca.crt", cert_file=pki / "client.crt", key_file=pki / "client.key",
        ),
        tz=dt.UTC,
        topic_prefix="secure",
    )

    async def scenario() -> None:
        gateway = Gateway(settings, None)
        with Subscriber(broker.url, "secure/+/readings") as sub:
            await gateway.queue.enqueue(entries(3), None, now=dt.datetime.now(dt.UTC))
            task = asyncio.create_task(gateway.run())
            try:
                got = await asyncio.to_thread(sub.wait_for, 3)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        assert [r["device_id"] for r in got] == ["DEV0001"] * 3

    with broker:
        run(scenario())


def test_refused_credentials_keep_readings_queued(tmp_path: Path) -> None:
    passwords = tmp_path / "passwd"
    passwords.write_text("")  # nobody may connect on the password listener
    broker = Mosquitto(
        tmp_path / "broker",
        extra=f"allow_anonymous false\npassword_file {passwords}\n"
        + ("user root\n" if os.geteuid() == 0 else ""),
        listener=None,
    )
    settings = GatewaySettings(
        gateway_id="hub-refused",
        data_dir=tmp_path / "hub",
        broker=broker_options(
            f"mqtt://hub:wrong@127.0.0.1:{broker.port}", client_id="hub-refused", protocol="3.1.1"
        ),
        tz=dt.UTC,
    )

    async def scenario() -> None:
        gateway = Gateway(settings, None)
        await gateway.queue.enqueue(entries(5), None, now=dt.datetime.now(dt.UTC))
        task = asyncio.create_task(gateway.run())
        try:
            await asyncio.sleep(1.5)  # a few refused connection attempts
            stats = await gateway.queue.stats()
            assert (stats.readings, stats.published) == (5, 0)
            assert gateway.publisher.messages_sent == 0
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    with broker:
        run(scenario())

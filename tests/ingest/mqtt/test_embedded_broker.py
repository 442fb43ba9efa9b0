"""`serve` with no RPM_MQTT_URL: an embedded broker (amqtt) with a generated credential."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from psycopg_pool import ConnectionPool

from devices.errors import PublishError
from devices.mqtt.publisher import Publisher
from ingest.embedded.broker import embedded_broker, local_broker_url
from ingest.mqtt.consumer import mqtt_component
from ingest.settings import Settings
from tests.support.mqtt_ingest import count_readings, publisher_options, reading, register, topic
from tests.support.service import free_port, running_service
from tests.support.waiting import wait_until


def test_serve_without_broker_url_runs_an_embedded_broker(
    settings: Settings, db_url: str, pool: ConnectionPool, topic_prefix: str, tmp_path: Path,
    publish: Callable[..., Publisher],
) -> None:
    register(pool, ["OX-E"])
    embedded = settings.model_copy(update={"mqtt_url": None, "mqtt_embedded_port": 0})
    with running_service(embedded, factories=[mqtt_component]) as svc:
        s = svc.services.settings
        assert s.mqtt_url is not None and s.mqtt_protocol == "3.1.1"
        assert local_broker_url(tmp_path) == s.mqtt_url
        wait_until(lambda: svc.services.readiness["mqtt"]()[0], 20, "connected to the embedded broker")
        pub = publish(s.mqtt_url, protocol="3.1.1")
        for i in range(50):
            pub.publish(topic(topic_prefix, "OX-E"), reading(i))
        assert pub.flush(10)
        wait_until(lambda: count_readings(db_url) == 50, 20, "50 readings through the embedded broker")
        ready = httpx.get(f"{svc.base_url}/readyz").json()
        assert ready["checks"]["mqtt"]["ok"] is True
    for name in ("password", "passwd", "url"):
        assert stat.S_IMODE((tmp_path / "mqtt" / name).stat().st_mode) == 0o600


def test_embedded_broker_refuses_anonymous_clients_and_keeps_its_credential(tmp_path: Path) -> None:
    with embedded_broker(tmp_path, port=0) as broker:
        first = broker.password
        anonymous = publisher_options(f"mqtt://127.0.0.1:{broker.port}", protocol="3.1.1", client_id="anon")
        with pytest.raises(PublishError):
            Publisher(anonymous).start(timeout_s=3)
        wrong = publisher_options(f"mqtt://rpm-ingest:wrong@127.0.0.1:{broker.port}", protocol="3.1.1")
        with pytest.raises(PublishError):
            Publisher(wrong).start(timeout_s=3)
        with Publisher(publisher_options(broker.url, protocol="3.1.1")) as ok:
            ok.publish("x/y/readings", b"{}")
            assert ok.flush(5)
    with embedded_broker(tmp_path, port=0) as again:
        assert again.password == first


def test_rpm_ingest_serve_with_the_embedded_broker_and_simulate(db_url: str, tmp_path: Path) -> None:
    """The commands as an operator runs them: `serve` with no RPM_MQTT_URL, a token, then
    `simulate --register`, which finds the embedded broker's URL under RPM_DATA_DIR."""
    bin_dir = Path(sys.executable).parent
    http_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPM_")}
    env.update(RPM_DATABASE_URL=db_url, RPM_DATA_DIR=str(tmp_path), RPM_HTTP_PORT=str(http_port),
               RPM_MQTT_EMBEDDED_PORT="0", RPM_MQTT_CLIENT_ID=f"embedded-{tmp_path.name}")
    with open(tmp_path / "serve.log", "wb") as log:
        serve = subprocess.Popen([str(bin_dir / "rpm-ingest"), "serve"], env=env, stdout=log, stderr=log)
    try:
        def ready() -> bool:
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                return httpx.get(f"http://127.0.0.1:{http_port}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 60, "serve with its embedded broker")
        created = subprocess.run(
            [str(bin_dir / "rpm-ingest"), "token", "create", "--role", "admin", "--name", "sim"],
            env=env, capture_output=True, text=True, check=True,
        )
        token = created.stdout.strip().splitlines()[-1]
        sim = subprocess.run(
            [str(bin_dir / "rpm-ingest"), "simulate", "--devices", "3", "--kinds", "hr_strap",
             "--rate", "100", "--count", "30", "--register", "--token", token],
            env=env, capture_output=True, text=True, timeout=60,
        )
        assert sim.returncode == 0, sim.stderr
        wait_until(lambda: count_readings(db_url) == 30, 20, "30 simulated readings")
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(30) == 0
        assert "embedded MQTT broker stopped" in (tmp_path / "serve.log").read_text()
    finally:
        if serve.poll() is None:
            serve.kill()


def test_embedded_broker_moves_off_a_taken_port(tmp_path: Path) -> None:
    """A machine that already runs a broker on 1883 still gets a working embedded one."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with embedded_broker(tmp_path, port=port) as broker:
            assert broker.port != port
            assert local_broker_url(tmp_path) == broker.url
            with socket.create_connection(("127.0.0.1", broker.port), timeout=5):
                pass

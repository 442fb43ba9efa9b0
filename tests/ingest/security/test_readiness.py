"""``/readyz`` follows the database and the broker (connections cut by a real TCP proxy)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import httpx

from ingest.mqtt.consumer import mqtt_component
from ingest.settings import Settings
from tests.support.mqtt_ingest import wait_ready
from tests.support.service import running_service
from tests.support.tcpproxy import TcpProxy
from tests.support.waiting import wait_until


def via(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


def checks(client: httpx.Client) -> tuple[int, dict[str, bool]]:
    r = client.get("/readyz")
    return r.status_code, {name: c["ok"] for name, c in r.json()["checks"].items()}


def test_readyz_reflects_database_and_broker(settings: Settings) -> None:
    db = urlsplit(settings.database_url or "")
    broker = urlsplit(settings.mqtt_url or "")
    with (
        TcpProxy(db.hostname or "127.0.0.1", db.port or 5432) as db_proxy,
        TcpProxy(broker.hostname or "127.0.0.1", broker.port or 1883) as mqtt_proxy,
    ):
        proxied = settings.model_copy(
            update={
                "database_url": via(settings.database_url or "", db_proxy),
                "mqtt_url": via(settings.mqtt_url or "", mqtt_proxy),
            }
        )
        with running_service(proxied, factories=[mqtt_component]) as svc, svc.client() as client:
            wait_ready(svc)
            assert checks(client) == (200, {"database": True, "mqtt": True})

            db_proxy.cut()
            wait_until(
                lambda: checks(client) == (503, {"database": False, "mqtt": True}), what="database down"
            )
            assert client.get("/healthz").status_code == 200  # alive, only not ready
            db_proxy.restore()
            wait_until(lambda: checks(client)[0] == 200, what="database back")

            mqtt_proxy.cut()
            wait_until(lambda: checks(client) == (503, {"database": True, "mqtt": False}), what="broker down")
            mqtt_proxy.restore()
            wait_until(lambda: checks(client) == (200, {"database": True, "mqtt": True}), what="broker back")

"""An embedded MQTT broker (amqtt, MQTT 3.1.1) for `serve` and `demo` when RPM_MQTT_URL is unset.

For development and demonstrations only; production runs Mosquitto (see docs/mqtt.md). amqtt
keeps sessions in memory, has no shared subscriptions, queues nothing for anonymous clients and
gives up on a message whose acknowledgement takes more than a few seconds, so it is started with
a generated credential (kept under RPM_DATA_DIR/mqtt, readable only by its owner) and the service
connects with it on a persistent 3.1.1 session.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from ingest.errors import EmbeddedServiceError
from ingest.settings import Settings

logger = logging.getLogger(__name__)

USERNAME: Final = "rpm-ingest"
_START_TIMEOUT_S: Final = 15.0


@dataclass(frozen=True, slots=True)
class EmbeddedBroker:
    host: str
    port: int
    username: str
    password: str

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        user, password = quote(self.username, safe=""), quote(self.password, safe="")
        return f"mqtt://{user}:{password}@{host}:{self.port}"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o600)


def _password(directory: Path) -> str:
    """The service's broker password, generated once and kept across restarts."""
    path = directory / "password"
    if path.is_file():
        existing = path.read_text(encoding="utf-8").strip()
        if len(existing) >= 16:
            return existing
    password = secrets.token_urlsafe(24)
    _write_private(path, password + "\n")
    return password


def _can_bind(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def embedded_broker(data_dir: Path, *, host: str = "127.0.0.1", port: int = 1883) -> Iterator[EmbeddedBroker]:
    """Run amqtt on ``host:port`` (0 = a free port) in a thread of its own; stop it on exit."""
    from amqtt.broker import Broker  # heavy imports only when the embedded broker is wanted
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    directory = (data_dir / "mqtt").resolve()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    password = _password(directory)
    password_file = directory / "passwd"
    _write_private(password_file, f"{USERNAME}:{PasswordHash((Argon2Hasher(),)).hash(password)}\n")
    taken = ""
    if port and not _can_bind(host, port):
        # e.g. a system Mosquitto already on 1883: the embedded broker must not fight it, and
        # nothing is wrong (the service and the demo use the URL below)
        taken, port = f" (port {port} is taken)", 0
    port = port or _free_port(host)
    config: dict[str, Any] = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {
            "amqtt.plugins.authentication.FileAuthPlugin": {"password_file": str(password_file)},
        },
    }
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="embedded-mqtt", daemon=True)
    thread.start()

    async def start() -> Broker:
        broker = Broker(config)
        await broker.start()
        return broker

    with ExitStack() as stack:
        stack.callback(_stop_loop, loop, thread)
        try:
            broker = asyncio.run_coroutine_threadsafe(start(), loop).result(_START_TIMEOUT_S)
        except Exception as exc:  # amqtt raises BrokerError, OSError, plugin errors alike
            raise EmbeddedServiceError(f"embedded MQTT broker did not start on {host}:{port}: {exc}") from exc
        stack.callback(_shutdown, broker, loop)
        embedded = EmbeddedBroker(host, port, USERNAME, password)
        _write_private(directory / "url", embedded.url + "\n")
        logger.info(
            "embedded MQTT broker (development only) on mqtt://%s:%d%s, credentials in %s",
            host, port, taken, directory,
        )
        yield embedded


def _shutdown(broker: Any, loop: asyncio.AbstractEventLoop) -> None:
    try:
        asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(10)
    except Exception as exc:  # noqa: BLE001 - best effort at shutdown; the loop stops regardless
        logger.warning("embedded MQTT broker did not shut down cleanly: %s", type(exc).__name__)
    logger.info("embedded MQTT broker stopped")


def _stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    if not thread.is_alive():
        loop.close()


def with_embedded_broker(settings: Settings, stack: ExitStack) -> Settings:
    """Settings pointing at an embedded broker started on ``stack`` when RPM_MQTT_URL is unset."""
    if settings.mqtt_url is not None or not settings.mqtt_enabled:
        return settings
    broker = stack.enter_context(
        embedded_broker(settings.data_dir, host=settings.mqtt_embedded_host, port=settings.mqtt_embedded_port)
    )
    return settings.model_copy(
        update={"mqtt_url": broker.url, "mqtt_protocol": "3.1.1", "mqtt_shared_group": None}
    )


def local_broker_url(data_dir: Path) -> str | None:
    """The URL (with credentials) of the embedded broker a local `serve` runs, if any."""
    path = data_dir / "mqtt" / "url"
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None

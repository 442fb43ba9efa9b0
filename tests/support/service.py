"""Run the real service (uvicorn on a free loopback port) inside a test."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import uvicorn

from ingest.components import ComponentFactory
from ingest.runtime import Runtime
from ingest.security.limits import uvicorn_options
from ingest.services import Services
from ingest.settings import Settings
from ingest.store.tokens import Role, create_token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class RunningService:
    runtime: Runtime
    base_url: str

    @property
    def services(self) -> Services:
        assert self.runtime.services is not None
        return self.runtime.services

    def token(
        self, role: Role, *, clinic: str | None = None, device: str | None = None, name: str = "t"
    ) -> str:
        with self.services.transaction() as conn:
            secret, _ = create_token(conn, name=name, role=role, clinic_id=clinic, device_id=device)
        return secret

    def client(self, token: str | None = None, **kwargs: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]


@contextmanager
def running_service(
    settings: Settings, factories: Sequence[ComponentFactory] | None = None, *, port: int | None = None
) -> Iterator[RunningService]:
    """``port``: a free port chosen beforehand (when the settings must name the service's own URL)."""
    port = free_port() if port is None else port
    settings = settings.model_copy(update={"http_port": port, "http_host": "127.0.0.1"})
    with Runtime(settings, factories) as runtime:
        assert runtime.app is not None
        server = uvicorn.Server(
            uvicorn.Config(
                runtime.app,
                host="127.0.0.1",
                port=port,
                log_config=None,
                lifespan="off",
                **uvicorn_options(settings),  # the limits `rpm-ingest serve` runs with
            )
        )
        thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("test service did not start")
            time.sleep(0.02)
        runtime.start_components()
        try:
            yield RunningService(runtime, f"http://127.0.0.1:{port}")
        finally:
            server.should_exit = True
            thread.join(timeout=20)

"""Runs the service (HTTP API + alerts) as a process of its own, for the multi-process tests.

``python -m tests.ingest.alerts.serve_proc DATABASE_URL PORT``; answers /healthz once listening and
stops cleanly on SIGTERM.
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

from ingest.alerts.component import alerts_component
from ingest.runtime import Runtime
from ingest.settings import Settings


def main(database_url: str, port: int) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        mqtt_url="mqtt://127.0.0.1:1883",
        mqtt_enabled=False,
        http_port=port,
        data_dir=Path("."),
        alert_stream_poll_s=0.5,
        alert_stream_heartbeat_s=1.0,
        alert_scheduler_interval_s=3600.0,
        db_pool_max=20,
        rate_limit_per_minute=0,
    )
    with Runtime(settings, [alerts_component]) as runtime:
        assert runtime.app is not None
        server = uvicorn.Server(
            uvicorn.Config(runtime.app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
        )
        runtime.start_components()
        server.run()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))

"""``rpm-ingest serve`` and ``rpm-ingest demo``."""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType

import click
import uvicorn

from ingest.db.migrate import migrate
from ingest.errors import ConfigurationError
from ingest.interpreter import tune_for_service
from ingest.logconfig import DEMO_CHATTER, configure_logging
from ingest.runtime import Runtime
from ingest.security.limits import uvicorn_options
from ingest.settings import Settings, load_settings
from ingest.workers.identity import worker_environment
from ingest.workers.supervisor import Supervisor, listening_socket, worker_command
from ingest.workers.worker import inherited_socket, watch_parent

logger = logging.getLogger(__name__)


def run_service(settings: Settings, *, demo: bool = False, listen_fd: int | None = None) -> None:
    """Run the service until SIGTERM/SIGINT, then stop cleanly (batch in hand finished, exit 0).

    ``listen_fd``: serve on this inherited listening socket (a worker of ``serve --workers N``).
    """
    with Runtime(settings) as runtime:
        assert runtime.app is not None
        config = uvicorn.Config(
            runtime.app,
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,
            lifespan="off",
            **uvicorn_options(settings),
        )
        server = _GracefulServer(config)
        # A stop asked for while the components start (before uvicorn takes the signals over) is
        # kept: the server then shuts down as soon as it has started, and everything stops in order.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, server.handle_exit)
        runtime.start_components()
        tune_for_service()
        demo_devices = None
        if demo:
            from ingest.demo import start_demo

            demo_devices = start_demo(runtime, server)
            runtime.components.append(demo_devices)
        logger.info("API listening on http://%s:%d", settings.http_host, settings.http_port)
        try:
            if listen_fd is None:
                server.run()
            else:
                server.run(sockets=[inherited_socket(listen_fd)])
        finally:
            logger.info("shutting down")
            # The demo's devices stop before the components they publish to (started earlier).
            if demo_devices is not None and demo_devices.stop is not None:
                demo_devices.stop()


class _GracefulServer(uvicorn.Server):
    """Stop serving on SIGINT/SIGTERM without re-raising the signal afterwards (uvicorn does, which
    would kill the process before the components, the pool and the embedded servers stop, and make
    Ctrl-C exit with status 1): the caller then stops everything in order and exits 0."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: stop waiting for open connections
        self.should_exit = True


@click.command()
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Worker processes sharing the HTTP port, one MQTT shared subscription and the database"
    " (default RPM_WORKERS, 1). More than one needs RPM_DATABASE_URL, RPM_MQTT_URL and"
    " RPM_MQTT_SHARED_GROUP; worker i uses MQTT client id <RPM_MQTT_CLIENT_ID>-<i>. A crashed"
    " worker is started again; see docs/scaling.md.",
)
@click.option("--worker-of", type=int, default=None, hidden=True)
@click.option("--listen-fd", type=int, default=None, hidden=True)
def serve(workers: int | None, worker_of: int | None, listen_fd: int | None) -> None:
    """Run the clinic service: REST API + dashboard, MQTT consumer, alerts, FHIR export.

    With no RPM_DATABASE_URL an embedded PostgreSQL runs under RPM_DATA_DIR; with no
    RPM_MQTT_URL an embedded MQTT broker runs. Stops cleanly on SIGTERM/SIGINT.
    """
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    if worker_of is not None:
        watch_parent(worker_of)
        run_service(settings, listen_fd=listen_fd)
        return
    count = workers if workers is not None else settings.workers
    if count == 1:
        run_service(settings)
        return
    sys.exit(supervise(settings, count))


def supervise(settings: Settings, count: int) -> int:
    """``serve --workers N``: check the settings, migrate once, bind the port, run N workers."""
    missing = [
        variable
        for variable, value in (
            ("RPM_DATABASE_URL", settings.database_url),
            ("RPM_MQTT_URL", settings.mqtt_url if settings.mqtt_enabled else "off"),
            ("RPM_MQTT_SHARED_GROUP", settings.mqtt_shared_group if settings.mqtt_enabled else "off"),
        )
        if value is None
    ]
    if missing:
        raise ConfigurationError(
            f"--workers {count} needs {', '.join(missing)}: the embedded servers serve one process,"
            " and without a shared group every worker would receive every reading"
        )
    assert settings.database_url is not None
    applied = migrate(settings.database_url)  # once, before the workers start
    if applied:
        logger.info("applied migrations %s", applied)
    sock = listening_socket(settings.http_host, settings.http_port)
    logger.info(
        "API listening on http://%s:%d with %d workers", settings.http_host,
        sock.getsockname()[1], count,
    )
    supervisor = Supervisor(
        count,
        command=lambda _index: worker_command(os.getpid(), sock.fileno()),
        environment=lambda index: worker_environment(settings.replica, index),
        pass_fds=[sock.fileno()],
    )
    try:
        return supervisor.run()
    finally:
        sock.close()


@click.command()
def demo() -> None:
    """`serve` plus simulated home devices for a few synthetic patients.

    Prints the dashboard URL and an admin token. Ctrl-C stops everything cleanly.
    """
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format, quiet=DEMO_CHATTER)
    run_service(settings, demo=True)

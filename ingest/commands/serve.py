"""``rpm-ingest serve`` and ``rpm-ingest demo``."""

from __future__ import annotations

import logging
import signal
from types import FrameType

import click
import uvicorn

from ingest.interpreter import tune_for_service
from ingest.logconfig import DEMO_CHATTER, configure_logging
from ingest.runtime import Runtime
from ingest.security.limits import uvicorn_options
from ingest.settings import Settings, load_settings

logger = logging.getLogger(__name__)


def run_service(settings: Settings, *, demo: bool = False) -> None:
    """Run the service until SIGTERM/SIGINT, then stop cleanly (batch in hand finished, exit 0)."""
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
        runtime.start_components()
        tune_for_service()
        demo_devices = None
        if demo:
            from ingest.demo import start_demo

            demo_devices = start_demo(runtime, server)
            runtime.components.append(demo_devices)
        logger.info("API listening on http://%s:%d", settings.http_host, settings.http_port)
        try:
            server.run()
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
def serve() -> None:
    """Run the clinic service: REST API + dashboard, MQTT consumer, alerts, FHIR export.

    With no RPM_DATABASE_URL an embedded PostgreSQL runs under RPM_DATA_DIR; with no
    RPM_MQTT_URL an embedded MQTT broker runs. Stops cleanly on SIGTERM/SIGINT.
    """
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    run_service(settings)


@click.command()
def demo() -> None:
    """`serve` plus simulated home devices for a few synthetic patients.

    Prints the dashboard URL and an admin token. Ctrl-C stops everything cleanly.
    """
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format, quiet=DEMO_CHATTER)
    run_service(settings, demo=True)

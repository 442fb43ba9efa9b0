"""``rpm-ingest demo``: the service plus a synthetic clinic whose devices keep measuring.

:func:`start_demo` registers the demo clinic's patients and devices, fills in their last 30 days,
sets a few patient-specific thresholds, then starts the live devices: MQTT devices publishing to
the service's broker and an emulated Bluetooth home behind the real home gateway. It returns a
component whose ``stop`` stops them, and announces the dashboard URL and an admin token once the
API listens.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING
from uuid import UUID

import click

from devices.mqtt.publisher import Publisher
from ingest.components import Component
from ingest.demo import history, register, thresholds
from ingest.demo.clinic import PATIENTS, DemoPatient, with_devices
from ingest.demo.home import HomeRunner, demo_devices
from ingest.demo.live import LiveDevice, LiveDevices
from ingest.errors import ConfigurationError
from ingest.mqtt.config import options_from_settings
from ingest.services import Services

if TYPE_CHECKING:
    import uvicorn

    from ingest.runtime import Runtime

logger = logging.getLogger(__name__)

HOME_PATIENT = "DEMO-1006"
HOME_NUMBER = 0


def local_zone() -> tzinfo:
    return datetime.now().astimezone().tzinfo or UTC


def demo_patients(home: int = HOME_NUMBER) -> list[DemoPatient]:
    """The demo patients, the Bluetooth home's devices given to the patient who lives there."""
    return [with_devices(p, demo_devices(home)) if p.mrn == HOME_PATIENT else p for p in PATIENTS]


@dataclass(frozen=True, slots=True)
class SeededClinic:
    patients: list[DemoPatient]
    ids: dict[str, UUID]  # MRN -> patient id
    token: str  # a new admin token
    started: datetime


def seed_clinic(services: Services, zone: tzinfo, now: datetime | None = None) -> SeededClinic:
    """Register the demo clinic (idempotent), set its thresholds and fill in 30 days of history."""
    now = now or datetime.now(UTC)
    patients = demo_patients()
    with services.transaction() as conn:
        ids = register.register(conn, patients, now)
        thresholds.apply(conn, patients, ids)
        token = register.admin_token(conn, now)
    history.backfill(services, patients, zone, now, demo_start=now)
    return SeededClinic(patients, ids, token, now)


def start_demo(runtime: Runtime, server: uvicorn.Server) -> Component:
    services = runtime.services
    if services is None:
        raise ConfigurationError("the demo needs a running service")
    settings = services.settings
    if settings.mqtt_url is None:
        raise ConfigurationError("the demo needs an MQTT broker (RPM_MQTT_URL or the embedded one)")
    zone = local_zone()
    seeded = seed_clinic(services, zone)
    patients, now, token = seeded.patients, seeded.started, seeded.token

    options = options_from_settings(settings, client_id=f"{settings.mqtt_client_id}-demo-devices")
    publisher = Publisher(options)
    publisher.start()
    live = LiveDevices(
        publisher,
        [
            LiveDevice(device, patient.physiology(zone, now, now))
            for patient in patients
            if patient.mrn != HOME_PATIENT and patient.silent_hours == 0
            for device in patient.devices
        ],
        topic_prefix=settings.mqtt_topic_prefix,
    )
    live.start()
    home = HomeRunner(
        settings.mqtt_url,
        data_dir=settings.data_dir / "demo-home",
        topic_prefix=settings.mqtt_topic_prefix,
        home=HOME_NUMBER,
        gateway_id=f"{settings.mqtt_client_id}-home-{HOME_NUMBER}",
        measure_every_s=45.0,
        tz=zone,
    )
    home.start()

    url = f"http://{_display_host(settings.http_host)}:{settings.http_port}/"
    threading.Thread(
        target=_announce, args=(server, url, token, click.echo), name="demo-banner", daemon=True
    ).start()

    def stop() -> None:
        home.stop()
        live.stop()
        publisher.close()

    return Component(name="demo devices", stop=stop, extras={"token": token, "url": url})


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def _announce(server: uvicorn.Server, url: str, token: str, echo: Callable[[str], None]) -> None:
    """Print where to go and how to sign in, once the API actually listens."""
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline and not server.should_exit:
        time.sleep(0.1)
    if not server.started:
        return
    echo("")
    echo("  RPM demo is running with synthetic patients and live devices.")
    echo(f"  Dashboard:    {url}")
    echo(f"  Admin token:  {token}")
    echo("  Sign in with the token; alerts appear in the inbox within a minute.")
    echo("  Press Ctrl-C to stop.")
    echo("")

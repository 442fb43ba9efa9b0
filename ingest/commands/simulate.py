"""``rpm-ingest simulate``: simulated home devices publishing realistic readings (demo and load)."""

from __future__ import annotations

import json
import logging
import signal
import threading
from types import FrameType

import click
import httpx

from devices.errors import PublishError
from devices.mqtt.publisher import Publisher
from ingest.embedded.broker import local_broker_url
from ingest.errors import ConfigurationError, IngestError
from ingest.logconfig import configure_logging
from ingest.mqtt.config import options_from_settings
from ingest.settings import load_settings
from ingest.simulator.enrolment import register_fleet
from ingest.simulator.run import simulate as run_simulation
from ingest.simulator.simulated_devices import DEFAULT_KINDS, KINDS, build_fleet

logger = logging.getLogger(__name__)


@click.command()
@click.option("--devices", "device_count", type=click.IntRange(1, 100_000), default=10, show_default=True,
              help="number of simulated devices (one synthetic patient each)")
@click.option("--rate", type=click.FloatRange(min=0.001), default=1.0, show_default=True,
              help="messages per second, across all devices")
@click.option("--count", type=click.IntRange(min=1), default=None, help="stop after this many messages")
@click.option("--duration", type=click.FloatRange(min=0.0), default=None,
              help="stop after this many seconds (default: run until SIGTERM/SIGINT)")
@click.option("--kinds", default=",".join(DEFAULT_KINDS), show_default=True,
              help=f"comma-separated device kinds: {', '.join(KINDS)} (ecg_recorder sends 30 s ECG strips)")
@click.option("--abnormal", type=click.FloatRange(0.0, 1.0), default=0.2, show_default=True,
              help="share of devices that have abnormal episodes")
@click.option("--seed", type=int, default=1, show_default=True, help="makes the fleet reproducible")
@click.option("--id-prefix", default="SIM-", show_default=True, help="device ids are <prefix>00000...")
@click.option("--url", envvar="RPM_MQTT_URL", default=None,
              help="broker URL (default RPM_MQTT_URL, else the embedded broker of a local serve)")
@click.option("--protocol", type=click.Choice(["5", "3.1.1"]), default=None,
              help="MQTT version (default RPM_MQTT_PROTOCOL; 3.1.1 for the embedded broker)")
@click.option("--client-id", default="rpm-simulator", show_default=True)
@click.option("--max-pending", type=click.IntRange(1, 65535), default=1000, show_default=True,
              help="unacknowledged messages allowed in flight")
@click.option("--register/--no-register", default=False, show_default=True,
              help="register the devices and their patients through the REST API first")
@click.option("--api-url", default=None, help="REST API base URL (default http://RPM_HTTP_HOST:RPM_HTTP_PORT)")
@click.option("--token", envvar="RPM_API_TOKEN", default=None, help="admin token for --register")
def simulate(
    device_count: int, rate: float, count: int | None, duration: float | None, kinds: str,
    abnormal: float, seed: int, id_prefix: str, url: str | None, protocol: str | None, client_id: str,
    max_pending: int,
    register: bool, api_url: str | None, token: str | None,
) -> None:
    """Publish realistic readings from simulated devices at QoS 1 (also a load generator).

    Topics are <RPM_MQTT_TOPIC_PREFIX>/<device id>/readings. Prints a JSON summary at the end;
    SIGTERM/SIGINT stop publishing, wait for the broker's acknowledgements and exit 0.
    """
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    url = url or settings.mqtt_url
    if url is None:
        url = local_broker_url(settings.data_dir)
        protocol = protocol or "3.1.1"  # the embedded broker speaks MQTT 3.1.1 only
    if url is None:
        raise click.UsageError("no broker: set RPM_MQTT_URL or --url (or run `rpm-ingest serve` here first)")
    try:
        fleet = build_fleet(
            device_count, kinds=[k.strip() for k in kinds.split(",") if k.strip()],
            abnormal_fraction=abnormal, seed=seed, id_prefix=id_prefix,
        )
        update = {"mqtt_url": url, "mqtt_protocol": protocol or settings.mqtt_protocol}
        options = options_from_settings(settings.model_copy(update=update), client_id=client_id)
    except (ValueError, ConfigurationError) as exc:
        raise click.UsageError(str(exc)) from None
    if register:
        if token is None:
            raise click.UsageError("--register needs an admin token (--token or RPM_API_TOKEN)")
        base = api_url or f"http://{settings.http_host}:{settings.http_port}"
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            try:
                register_fleet(client, fleet)
            except (IngestError, httpx.HTTPError) as exc:
                raise click.ClickException(f"registration failed: {exc}") from None

    stop = threading.Event()

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        with Publisher(options, max_pending=max_pending) as publisher:
            report = run_simulation(
                publisher, fleet, topic_prefix=settings.mqtt_topic_prefix, rate=rate, count=count,
                duration_s=duration, stop=stop,
            )
    except (IngestError, PublishError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(report.as_dict()))

"""``rpm-ingest gateway``: the home gateway (BLE collector, durable queue, MQTT publisher)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import socket
from datetime import timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from devices.ble.collector_loop import normalise_address
from devices.errors import BrokerConfigError, DevicesError
from devices.gateway.runner import DEFAULT_MAX_QUEUE_BYTES, Gateway, GatewaySettings, local_zone
from devices.models import DEVICE_ID_RE
from devices.mqtt.options import BrokerOptions, broker_options
from ingest.logconfig import configure_logging

logger = logging.getLogger(__name__)

_HELP = """Run the home gateway: collect readings from paired Bluetooth health devices, keep them
in a durable on-disk queue and publish them to the clinic's MQTT broker at QoS 1.

\b
What it does
  Scans for the Bluetooth SIG health services (heart rate, blood pressure, thermometer,
  pulse oximeter, weight scale, glucose), connects to the devices you list with --device,
  subscribes to their measurements, fetches stored records (RACP) after the last one it
  kept, sets device clocks (Current Time) and corrects wrong ones, and publishes each
  reading to <prefix>/<device_id>/readings. A reading leaves the queue
  (<data-dir>/gateway-queue.sqlite3) only after the broker acknowledged it; the queue
  survives power cuts and outages of days, and drops the oldest readings first (with a
  warning) only when it reaches --max-queue-mb.

\b
Running it on a Linux home hub (Raspberry Pi or similar) with BlueZ
  1. Install BlueZ and start it:  sudo apt install bluez && sudo systemctl enable --now bluetooth
  2. Find your devices (take a measurement so they advertise):
       rpm-ingest gateway --scan 30
  3. Pair each device once if it needs bonding (most BP cuffs and scales do):
       bluetoothctl  ->  scan on  /  pair AA:BB:CC:DD:EE:FF  /  trust AA:BB:CC:DD:EE:FF
  4. Let the gateway's user talk to BlueZ over D-Bus: add it to the "bluetooth" group
     (sudo usermod -aG bluetooth rpm) or run it as a system service with access to
     org.bluez.
  5. Run it (as a systemd service with Restart=always; SIGTERM stops it cleanly):
       RPM_MQTT_URL=mqtts://hub-17:secret@broker.clinic.example:8883 \\
       RPM_DATA_DIR=/var/lib/rpm-gateway \\
       rpm-ingest gateway --gateway-id home-hub-17 \\
         --device AA:BB:CC:DD:EE:FF --device 11:22:33:44:55:66=cuff-0042
     Register each device id with the clinic (POST /v1/devices) and assign it to the
     patient. By default a device's id is its address without colons, upper case.
  Use --adapter hci1 to pick another adapter, --timezone if the hub's zone is not the home's.

\b
Trying it without Bluetooth
  rpm-ingest gateway --emulate   runs six emulated devices on a virtual radio
  (bumble) through the same collector code, publishing to RPM_MQTT_URL.
"""


def _zone(name: str | None) -> tzinfo:
    if not name:
        return local_zone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise click.BadParameter(f"unknown time zone {name!r}", param_hint="--timezone") from exc


def _devices(values: tuple[str, ...]) -> dict[str, str | None]:
    devices: dict[str, str | None] = {}
    for value in values:
        address, _, device_id = value.partition("=")
        try:
            normal = normalise_address(address.strip())
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--device") from exc
        if device_id and not DEVICE_ID_RE.fullmatch(device_id):
            raise click.BadParameter(
                f"{device_id!r} is not a device id (1-64 of A-Z a-z 0-9 . _ : -)", param_hint="--device"
            )
        devices[normal] = device_id or None
    return devices


@click.command(help=_HELP, short_help="The home gateway: BLE collector -> durable queue -> MQTT.")
@click.option("--mqtt-url", envvar="RPM_MQTT_URL", default="mqtt://127.0.0.1:1883", show_default=True,
              help="Broker URL, mqtt:// or mqtts:// (env RPM_MQTT_URL).")
@click.option("--mqtt-protocol", type=click.Choice(["3.1.1", "5"]), default="3.1.1", show_default=True)
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CA bundle for mqtts:// (default: system trust store).")
@click.option("--cert-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Client certificate for mqtts:// (per-gateway credential).")
@click.option("--key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Private key of --cert-file.")
@click.option("--gateway-id", envvar="RPM_GATEWAY_ID", default=None,
              help="This hub's id, sent as gateway_id (default: the host name).")
@click.option("--topic-prefix", default="rpm", show_default=True,
              help="Topic prefix: <prefix>/<device_id>/readings.")
@click.option("--data-dir", envvar="RPM_DATA_DIR", default="./var", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Where the queue file lives (env RPM_DATA_DIR).")
@click.option("--device", "device_specs", multiple=True, metavar="ADDRESS[=DEVICE_ID]",
              help="A paired device to collect from (repeat for each).")
@click.option("--accept-any", is_flag=True, help="Collect from any health device in range (setup/demo only).")
@click.option("--adapter", default=None, help="Bluetooth adapter (BlueZ), e.g. hci0.")
@click.option("--timezone", "zone_name", default=None,
              help="IANA zone the device clocks show (default: the hub's).")
@click.option("--max-queue-mb", type=click.FloatRange(min=0.01), default=DEFAULT_MAX_QUEUE_BYTES / 2**20,
              show_default=True, help="Queue size limit; the oldest readings are dropped beyond it.")
@click.option("--continuous-interval", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Seconds between kept samples of streaming values (heart-rate straps, oximeters).")
@click.option("--scan", "scan_seconds", type=click.FloatRange(min=1), default=None, metavar="SECONDS",
              help="Only list the health devices seen advertising for SECONDS, then exit.")
@click.option("--drain-only", is_flag=True, help="Publish what is queued without collecting (no Bluetooth).")
@click.option("--emulate", is_flag=True, help="Collect from emulated devices on a virtual radio.")
@click.option("--log-level", envvar="RPM_LOG_LEVEL", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def gateway(
    mqtt_url: str,
    mqtt_protocol: str,
    ca_file: Path | None,
    cert_file: Path | None,
    key_file: Path | None,
    gateway_id: str | None,
    topic_prefix: str,
    data_dir: Path,
    device_specs: tuple[str, ...],
    accept_any: bool,
    adapter: str | None,
    zone_name: str | None,
    max_queue_mb: float,
    continuous_interval: float,
    scan_seconds: float | None,
    drain_only: bool,
    emulate: bool,
    log_level: str,
) -> None:
    configure_logging(log_level.upper())
    if scan_seconds is not None:
        asyncio.run(_scan(adapter, scan_seconds))
        return
    if (cert_file is None) != (key_file is None):
        raise click.UsageError("--cert-file and --key-file go together")
    name = gateway_id or socket.gethostname() or "home-gateway"
    broker = _broker(mqtt_url, mqtt_protocol, f"rpm-gateway-{name}"[:64], ca_file, cert_file, key_file)
    devices = _devices(device_specs)
    if not (devices or accept_any or drain_only or emulate):
        raise click.UsageError("name the paired devices with --device (or use --scan to find them)")
    settings = GatewaySettings(
        gateway_id=name,
        data_dir=data_dir,
        broker=broker,
        tz=_zone(zone_name),
        topic_prefix=topic_prefix,
        allow=frozenset(devices),
        accept_any=accept_any,
        device_ids={a: d for a, d in devices.items() if d},
        max_queue_bytes=int(max_queue_mb * 2**20),
        continuous_interval=timedelta(seconds=continuous_interval),
        adapter=adapter,
    )
    try:
        asyncio.run(_run(settings, drain_only=drain_only, emulate=emulate))
    except DevicesError as exc:  # the queue is unusable, or the gateway cannot run at all
        raise click.ClickException(str(exc)) from exc


_OPTION_OF_SETTING = {
    "url": "--mqtt-url", "username": "--mqtt-url", "password": "--mqtt-url",
    "protocol": "--mqtt-protocol", "client_id": "--gateway-id",
    "ca_file": "--ca-file", "cert_file": "--cert-file", "key_file": "--key-file",
}


def _broker(
    url: str, protocol: str, client_id: str,
    ca_file: Path | None, cert_file: Path | None, key_file: Path | None,
) -> BrokerOptions:
    try:
        return broker_options(
            url, client_id=client_id, protocol=protocol,
            ca_file=ca_file, cert_file=cert_file, key_file=key_file, reconnect_max_s=60,
        )
    except BrokerConfigError as exc:
        raise click.BadParameter(exc.reason, param_hint=_OPTION_OF_SETTING.get(exc.setting)) from exc


async def _run(settings: GatewaySettings, *, drain_only: bool, emulate: bool) -> None:
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, main.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        if emulate:
            await _run_emulated(settings)
        elif drain_only:
            await Gateway(settings, None).run()
        else:
            from devices.ble.collector import BleakCentral

            await Gateway(settings, BleakCentral(adapter=settings.adapter)).run()
    logger.info("gateway exited cleanly")


async def _run_emulated(settings: GatewaySettings) -> None:
    from devices.ble.emulated.home import EmulatedHome, record_numbering

    home = EmulatedHome(0, tz=settings.tz, numbering=record_numbering(settings.data_dir))
    await home.start()
    emulated = dataclasses.replace(settings, allow=home.addresses, accept_any=False)
    activity = asyncio.create_task(home.live("normal", 30.0))
    try:
        await Gateway(emulated, home.central()).run()
    finally:
        activity.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await activity
        await home.stop()


async def _scan(adapter: str | None, seconds: float) -> None:
    from devices.ble.characteristics import short_uuid
    from devices.ble.collector import BleakCentral
    from devices.ble.collector_api import HEALTH_SERVICES, Sighting
    from devices.errors import UnsupportedCharacteristic

    def is_supported_uuid(uuid: str) -> bool:
        try:
            short_uuid(uuid)
        except UnsupportedCharacteristic:
            return False
        return True

    seen: dict[str, Sighting] = {}

    def remember(sighting: Sighting) -> None:
        seen.setdefault(sighting.address, sighting)

    central = BleakCentral(adapter=adapter)
    async with central.scan(remember):
        await asyncio.sleep(seconds)
    if not seen:
        click.echo("no health devices seen (take a measurement so the device advertises)")
    for sighting in seen.values():
        services = sorted(
            HEALTH_SERVICES.get(short_uuid(u), u) for u in sighting.service_uuids if is_supported_uuid(u)
        )
        click.echo(f"{sighting.address}  {sighting.name or '?':24}  {', '.join(services)}")

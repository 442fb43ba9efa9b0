"""``rpm-ingest ble``: Bluetooth tools (decode one GATT value)."""

from __future__ import annotations

import click


@click.group()
def ble() -> None:
    """Bluetooth Low Energy tools."""

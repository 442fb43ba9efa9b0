"""``rpm-ingest ble``: Bluetooth tools (decode one GATT value)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from typing import IO, Any, Final

import click

from devices.ble import DecodeResult, decode
from devices.ble.characteristics import short_uuid
from devices.ble.racp import decode_racp_request
from devices.errors import MalformedPayload

MAX_HEX_CHARS: Final = 4096
MAX_LINE_CHARS: Final = 8192
_SEPARATORS: Final = re.compile(r"[\s:]+")
_HEX: Final = re.compile(r"[0-9a-fA-F]*")
_RACP: Final = 0x2A52


@click.group()
def ble() -> None:
    """Bluetooth Low Energy tools."""


def parse_hex(text: str) -> bytes:
    """Octets from hex text; spaces and colons between octets and a 0x prefix are allowed."""
    if len(text) > MAX_HEX_CHARS:
        raise MalformedPayload(f"hex value is over {MAX_HEX_CHARS} characters")
    digits = _SEPARATORS.sub("", text)
    if digits[:2].lower() == "0x":
        digits = digits[2:]
    if not _HEX.fullmatch(digits):
        bad = next(i for i, c in enumerate(digits) if c not in "0123456789abcdefABCDEF")
        raise MalformedPayload(f"{digits[bad]!r} is not a hex digit", offset=bad // 2)
    if len(digits) % 2:
        raise MalformedPayload(f"hex value has an odd number of digits ({len(digits)})")
    return bytes.fromhex(digits)


def decode_value(characteristic: str, hex_text: str, *, direction: str) -> DecodeResult:
    """Decode one value as the command does; raise MalformedPayload on any bad input."""
    data = parse_hex(hex_text)
    if direction == "write" and short_uuid(characteristic) == _RACP:
        return decode_racp_request(data)
    return decode(characteristic, data)


def describe(result: DecodeResult) -> dict[str, Any]:
    """The command's JSON object for one decoded value."""
    return {
        "characteristic": result.characteristic,
        "name": result.name,
        "fields": result.fields,
        "readings": [
            {
                "metric": m.metric,
                "value": m.value,
                "unit": m.unit,
                "measured_at": None if m.measured_at is None else m.measured_at.isoformat(),
                "status": list(m.status),
            }
            for m in result.measurements
        ],
    }


def _dumps(obj: Any, pretty: bool) -> str:
    return json.dumps(obj, allow_nan=False, indent=2 if pretty else None, ensure_ascii=False)


def _lines(stream: IO[str]) -> Iterator[tuple[int, str | None]]:
    """Numbered input lines; None for a line over MAX_LINE_CHARS (read past, not kept)."""
    number = 0
    while True:
        line = stream.readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_CHARS and not line.endswith("\n"):
            while True:  # skip the rest of the oversized line
                rest = stream.readline(MAX_LINE_CHARS)
                if not rest or rest.endswith("\n"):
                    break
            yield number, None
            continue
        yield number, line


def _decode_stream(default: str | None, direction: str, pretty: bool) -> bool:
    """Decode ``CHARACTERISTIC HEX`` lines from stdin; True when every line decoded."""
    ok = True
    for number, line in _lines(sys.stdin):
        try:
            if line is None:
                raise MalformedPayload(f"line is over {MAX_LINE_CHARS} characters")
            tokens = line.split()
            if not tokens:
                continue
            if len(tokens) >= 2:
                characteristic, hex_text = tokens[0], "".join(tokens[1:])
            elif default is not None:
                characteristic, hex_text = default, tokens[0]
            else:
                raise MalformedPayload("line must be 'CHARACTERISTIC HEX'")
            out = describe(decode_value(characteristic, hex_text, direction=direction))
        except MalformedPayload as exc:
            ok = False
            click.echo(_dumps({"error": str(exc), "line": number}, pretty))
        else:
            click.echo(_dumps(out, pretty))
    return ok


@ble.command("decode")
@click.argument("characteristic")
@click.argument("hex_value", metavar="HEX", required=False)
@click.option(
    "--direction",
    type=click.Choice(["indication", "write"]),
    default="indication",
    show_default=True,
    help="Record Access Control Point (2a52) only: decode a server indication or a client write request.",
)
@click.option("--pretty", is_flag=True, help="Indent the JSON output.")
def decode_command(characteristic: str, hex_value: str | None, direction: str, pretty: bool) -> None:
    """Decode one GATT characteristic value and print it as JSON.

    CHARACTERISTIC is a 16-bit UUID (2a37, 0x2A37) or a 128-bit UUID on the Bluetooth base
    (00002a37-0000-1000-8000-00805f9b34fb). HEX is the value as hex digits (spaces and
    colons between octets allowed). Output: {"characteristic", "name", "fields",
    "readings": [{"metric", "value", "unit", "measured_at", "status"}]} with values in the
    canonical unit and measured_at the device's own clock (no time zone), or null.

    With HEX "-" (or CHARACTERISTIC "-" and no HEX), lines "CHARACTERISTIC HEX" are read
    from stdin (a bare "HEX" line uses the CHARACTERISTIC argument) and one JSON line is
    printed per line; a malformed line prints {"error": reason, "line": n} and the command
    exits 1 at the end.

    Exit status 1, with the reason on stderr, when the value is malformed.

    \b
    Examples:
      rpm-ingest ble decode 2a37 065a
      rpm-ingest ble decode 2a35 1e79004f005d00e8070305071e008200ff0800
      printf '2a37 065a\\n2a1c 01da0300ff\\n' | rpm-ingest ble decode - -
    """
    if hex_value is None and characteristic != "-":
        raise click.UsageError("missing argument 'HEX' (or '-' to read lines from stdin)")
    if hex_value is None or hex_value == "-":
        default = None if characteristic == "-" else characteristic
        if not _decode_stream(default, direction, pretty):
            raise click.exceptions.Exit(1)
        return
    try:
        result = decode_value(characteristic, hex_value, direction=direction)
    except MalformedPayload as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(1) from None
    click.echo(_dumps(describe(result), pretty))

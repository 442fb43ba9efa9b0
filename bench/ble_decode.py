"""Decodes per second of the pure BLE decoders, one row per characteristic.

Each row decodes one representative value (a contract vector) three ways, measured in the
same run on the same bytes:

* ``baseline``: ``struct.Struct("<NB").unpack`` of the value, the bare cost of turning the
  octets into integers (no flags, no checks, no result objects);
* ``decoder``: the characteristic's decoder function (fields + canonical measurements);
* ``decode()``: the public registry entry point with the 16-bit UUID text, as the collector
  calls it.

Run: ``.venv/bin/python bench/ble_decode.py [--min-time 0.2] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import platform
import struct
import sys
import timeit
from collections.abc import Callable
from functools import partial

from devices.ble import decode
from devices.ble.characteristics import DECODERS

# (label, 16-bit UUID, value) - each value is a vector from docs/contract/ble-vectors.json or a
# byte literal of tests/devices/ble
CASES: list[tuple[str, int, bytes]] = [
    ("2A37 heart rate (uint8)", 0x2A37, bytes.fromhex("065a")),
    ("2A37 heart rate (+energy, 3 RR)", 0x2A37, bytes.fromhex("1fe8030200000c00100014")),
    ("2A35 blood pressure (full)", 0x2A35, bytes.fromhex("1e79004f005d00e8070305071e008200ff0800")),
    ("2A36 intermediate cuff pressure", 0x2A36, bytes.fromhex("156ff0000000003c001200")),
    ("2A1C temperature (full)", 0x2A1C, bytes.fromhex("06b00e00fedc070c050b321b04")),
    ("2A18 glucose (status)", 0x2A18, bytes.fromhex("0f0201e7070b05172d0a3c004ec0210100")),
    ("2A34 glucose context", 0x2A34, bytes.fromhex("070a000132d00151")),
    ("2A5E PLX spot-check (full)", 0x2A5E, bytes.fromhex("0f61004800e8070305071e00804020000035f0")),
    ("2A5F PLX continuous", 0x2A5F, bytes.fromhex("0064005a00")),
    ("2A9D weight (imperial, all)", 0x2A9D, bytes.fromhex("0f543de7070c190e1e2d03f500a802")),
    ("2A9C body composition", 0x2A9C, bytes.fromhex("000ed7008813b036d606")),
    ("2AA7 CGM (1 record + CRC)", 0x2AA7, bytes.fromhex("08000c100600596f")),
    ("2AA7 CGM (3 records)", 0x2AA7, bytes.fromhex("0600780005000600ff070a0006007a000f00")),
    ("2A52 RACP response", 0x2A52, bytes.fromhex("06000101")),
    ("2A08 date time", 0x2A08, bytes.fromhex("e20704110f3300")),
    ("2A2B current time", 0x2A2B, bytes.fromhex("e8070305071e0f028001")),
]


def rate(func: Callable[[], object], min_time: float, repeat: int) -> float:
    """Calls per second: the best of ``repeat`` runs of at least ``min_time`` seconds each."""
    timer = timeit.Timer(func)
    number, elapsed = timer.autorange()
    number = max(number, int(number * min_time / max(elapsed, 1e-9)))
    best = min(timer.repeat(repeat=repeat, number=number))
    return number / best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds per timing run")
    parser.add_argument("--repeat", type=int, default=5, help="timing runs per figure (best is kept)")
    args = parser.parse_args()

    print(f"Python {platform.python_version()} on {platform.machine()}, {platform.system()}")
    header = (
        f"{'characteristic':34} {'octets':>6} {'baseline/s':>12} {'decoder/s':>12} "
        f"{'decode()/s':>12} {'us/decode':>9} {'x base':>7}"
    )
    print(header)
    print("-" * len(header))
    for label, short, data in CASES:
        decoder = DECODERS[short].decoder
        key = f"{short:04x}"
        unpack = struct.Struct(f"<{len(data)}B").unpack
        decoder(data)  # fail fast if a case is wrong
        base = rate(partial(unpack, data), args.min_time, args.repeat)
        direct = rate(partial(decoder, data), args.min_time, args.repeat)
        public = rate(partial(decode, key, data), args.min_time, args.repeat)
        print(
            f"{label:34} {len(data):>6} {base:>12,.0f} {direct:>12,.0f} {public:>12,.0f} "
            f"{1e6 / public:>9.2f} {base / public:>7.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

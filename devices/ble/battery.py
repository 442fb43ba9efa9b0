"""Battery Level (0x2A19, Battery service 0x180F): uint8 percent, 0-100. No reading."""

from __future__ import annotations

from typing import Final

from devices.ble.reader import Reader
from devices.ble.result import DecodeResult

CHARACTERISTIC: Final = "2a19"


def decode_battery_level(data: bytes) -> DecodeResult:
    r = Reader(data, "Battery Level")
    level = r.u8("Battery Level")
    if level > 100:
        raise r.error(f"battery level {level} is over 100 %", 0)
    r.end()
    return DecodeResult(CHARACTERISTIC, "battery_level", {"battery_level_percent": level})

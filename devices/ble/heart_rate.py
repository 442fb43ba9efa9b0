"""Heart Rate Measurement (0x2A37, Heart Rate service 0x180D, notify).

Flags u8 (b0 HR is uint16, b1-2 sensor contact, b3 Energy Expended, b4 RR-Intervals) ·
HR uint8/uint16 bpm · [Energy Expended uint16 kJ] · [RR-Interval uint16 x n, 1/1024 s, to the
end of the value].

Readings: ``heart_rate``. None when the sensor reports no skin contact (the number is then
noise) or a heart rate of 0 (straps send 0 before they lock on).
"""

from __future__ import annotations

from typing import Any, Final

from devices.ble.reader import Reader
from devices.ble.result import DecodeResult, Measurement, measurement

CHARACTERISTIC: Final = "2a37"
NAME: Final = "heart_rate_measurement"
_CONTACT: Final = ("not_supported", "not_supported", "not_detected", "detected")


def decode_heart_rate(data: bytes) -> DecodeResult:
    r = Reader(data, "Heart Rate Measurement")
    flags = r.u8("Flags")
    if flags & 0x01:
        heart_rate = r.u16("Heart Rate Measurement Value (uint16)")
        hr_format = "uint16"
    else:
        heart_rate = r.u8("Heart Rate Measurement Value (uint8)")
        hr_format = "uint8"
    contact = _CONTACT[(flags >> 1) & 0x03]
    energy = r.u16("Energy Expended") if flags & 0x08 else None
    rr_raw: list[int] | None = None
    rr_seconds: list[float] | None = None
    if flags & 0x10:
        rr_octets = r.remaining
        if rr_octets < 2:
            raise r.error("RR-Interval flag set but no RR-Interval follows")
        if rr_octets % 2:
            raise r.error(
                f"RR-Interval list is {rr_octets} octets, not a whole number of uint16",
                offset=len(data) - 1,
            )
        start = r.pos
        rr_raw = [data[i] | data[i + 1] << 8 for i in range(start, len(data), 2)]
        rr_seconds = [v / 1024 for v in rr_raw]
        r.pos = len(data)
    else:
        r.end()
    fields: dict[str, Any] = {
        "heart_rate_bpm": heart_rate,
        "heart_rate_format": hr_format,
        "sensor_contact": contact,
        "energy_expended_kj": energy,
        "rr_intervals_raw_1_1024s": rr_raw,
        "rr_intervals_s": rr_seconds,
    }
    readings: tuple[Measurement, ...] = ()
    if heart_rate and contact != "not_detected":
        readings = (measurement("heart_rate", float(heart_rate), "/min", None),)
    return DecodeResult(CHARACTERISTIC, NAME, fields, readings)

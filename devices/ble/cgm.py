"""CGM Measurement (0x2AA7, notify; Continuous Glucose Monitoring service 0x181F).

One notification carries one or more records. Record: Size u8 (counts itself and the CRC) ·
Flags u8 (b0 Trend, b1 Quality, b5 Warning octet, b6 Cal/Temp octet, b7 Status octet) ·
Glucose SFLOAT mg/dL · Time Offset u16 minutes since session start · [annunciation octets] ·
[Trend SFLOAT (mg/dL)/min] · [Quality SFLOAT %] · [E2E-CRC u16].

The E2E-CRC is present when the device supports it (CGM Feature bit 12); a record states it
by its Size being the flag-derived length + 2, and a present CRC must match (CRC-16/MCRF4XX
over the record without the CRC). Annunciation octets are read in flag-bit order (warning,
cal/temp, status), as Nordic's qualified CGMS encoders send them.

Readings: ``blood_glucose`` per record, with no clock time (``time_offset`` instead: the
gateway adds it to the session start time it read from the sensor).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from devices.ble.ieee11073 import SpecialValue, json_value
from devices.ble.reader import Reader
from devices.ble.result import DecodeResult, Measurement, bit_flags, measurement

CHARACTERISTIC: Final = "2aa7"
MIN_RECORD_SIZE: Final = 6
STATUS_FLAGS: Final = (
    (0x01, "session_stopped"),
    (0x02, "device_battery_low"),
    (0x04, "sensor_type_incorrect"),
    (0x08, "sensor_malfunction"),
    (0x10, "device_specific_alert"),
    (0x20, "general_device_fault"),
)
CAL_TEMP_FLAGS: Final = (
    (0x01, "time_synchronization_required"),
    (0x02, "calibration_not_allowed"),
    (0x04, "calibration_recommended"),
    (0x08, "calibration_required"),
    (0x10, "sensor_temperature_too_high"),
    (0x20, "sensor_temperature_too_low"),
)
WARNING_FLAGS: Final = (
    (0x01, "result_below_patient_low"),
    (0x02, "result_above_patient_high"),
    (0x04, "result_below_hypo"),
    (0x08, "result_above_hyper"),
    (0x10, "rate_of_decrease_exceeded"),
    (0x20, "rate_of_increase_exceeded"),
    (0x40, "result_below_device_range"),
    (0x80, "result_above_device_range"),
)


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE: Final = _crc_table()


def crc16_mcrf4xx(data: bytes) -> int:
    """CRC-16/MCRF4XX: polynomial 0x1021 reflected, seed 0xFFFF, no final XOR."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def _record(r: Reader, data: bytes) -> tuple[dict[str, Any], Measurement | None]:
    start = r.pos
    size = r.u8("Size")
    if size < MIN_RECORD_SIZE:
        raise r.error(f"record Size is {size}, under the minimum {MIN_RECORD_SIZE}", start)
    if len(data) - start < size:
        raise r.error(f"record Size is {size} but only {len(data) - start} octets left", start)
    flags = r.u8("Flags")
    octets = (flags & 0x20) // 0x20 + (flags & 0x40) // 0x40 + (flags & 0x80) // 0x80
    length = MIN_RECORD_SIZE + octets + 2 * (flags & 0x01) + 2 * ((flags >> 1) & 0x01)
    if size not in (length, length + 2):
        raise r.error(
            f"record Size is {size} but its flags 0x{flags:02X} make it {length} "
            f"(or {length + 2} with E2E-CRC)",
            offset=start,
        )
    glucose = r.sfloat("CGM Glucose Concentration")
    offset_min = r.u16("Time Offset")
    record: dict[str, Any] = {
        "size": size,
        "glucose_mg_dl": json_value(glucose),
        "time_offset_min": offset_min,
    }
    status: list[str] = []
    annunciation: dict[str, Any] = {}
    for bit, octet, table in (
        (0x20, "warning", WARNING_FLAGS),
        (0x40, "cal_temp", CAL_TEMP_FLAGS),
        (0x80, "status", STATUS_FLAGS),
    ):
        if flags & bit:
            raw = r.u8(f"Sensor Status Annunciation {octet} octet")
            names = bit_flags(raw, table)
            annunciation[octet] = raw
            status.extend(names)
    record["sensor_status_annunciation"] = {**annunciation, "flags": list(status)} if annunciation else None
    record["trend_mg_dl_per_min"] = json_value(r.sfloat("CGM Trend")) if flags & 0x01 else None
    record["quality_percent"] = json_value(r.sfloat("CGM Quality")) if flags & 0x02 else None
    if size == length + 2:
        expected = crc16_mcrf4xx(data[start : r.pos])
        crc = r.u16("E2E-CRC")
        if crc != expected:
            raise r.error(f"E2E-CRC 0x{crc:04X} != computed 0x{expected:04X}", r.pos - 2)
        record["e2e_crc"] = crc
    else:
        record["e2e_crc"] = None
    reading = None
    if not isinstance(glucose, SpecialValue):
        offset = timedelta(minutes=offset_min)
        reading = measurement("blood_glucose", glucose, "mg/dL", None, status, time_offset=offset)
    return record, reading


def decode_cgm(data: bytes) -> DecodeResult:
    r = Reader(data, "CGM Measurement")
    if not data:
        raise r.error("empty value, at least one record expected", 0)
    records: list[dict[str, Any]] = []
    readings: list[Measurement] = []
    while r.remaining:
        record, reading = _record(r, data)
        records.append(record)
        if reading is not None:
            readings.append(reading)
    return DecodeResult(CHARACTERISTIC, "cgm_measurement", {"records": records}, tuple(readings))

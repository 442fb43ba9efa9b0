"""CGM Measurement 0x2AA7: several records per value, optional E2E-CRC."""

from __future__ import annotations

from datetime import timedelta

import pytest

from devices.ble import DecodeResult, Measurement, decode
from devices.ble.cgm import crc16_mcrf4xx
from devices.errors import MalformedPayload


def test_crc16_mcrf4xx_check_value() -> None:
    # Nordic Android-BLE-Library CRC16 test: MCRF4XX("123456789") == 0x6F91
    assert crc16_mcrf4xx(b"123456789") == 0x6F91


def test_one_record_without_crc() -> None:
    # constructed: size 6, no flags, 120 mg/dL, 5 min into the session
    assert decode("2aa7", bytes.fromhex("060078000500")) == DecodeResult(
        "2aa7",
        "cgm_measurement",
        {
            "records": [
                {
                    "size": 6,
                    "glucose_mg_dl": 120.0,
                    "time_offset_min": 5,
                    "sensor_status_annunciation": None,
                    "trend_mg_dl_per_min": None,
                    "quality_percent": None,
                    "e2e_crc": None,
                }
            ]
        },
        (
            Measurement(
                "blood_glucose", 120.0, "mg/dL", None, 120.0, "mg/dL", time_offset=timedelta(minutes=5)
            ),
        ),
    )


def test_record_with_valid_crc() -> None:
    # Nordic ContinuousGlucoseMeasurementDataCallbackTest.java#L190-L224 with the CRC the
    # record really has (0x6F59; that test sends 0x6F58 to provoke the error)
    result = decode("2aa7", bytes.fromhex("08000c100600596f"))
    assert result.fields["records"][0]["e2e_crc"] == 0x6F59
    assert result.fields["records"][0]["glucose_mg_dl"] == 120.0
    assert result.measurements[0].time_offset == timedelta(minutes=6)


def test_wrong_crc_is_refused() -> None:
    # Nordic #L190-L224 (vector cgm-nordic-crc-error)
    with pytest.raises(MalformedPayload) as caught:
        decode("2aa7", bytes.fromhex("08000c100600586f"))
    assert caught.value.offset == 6


def test_all_optional_fields_and_status_flags() -> None:
    # constructed: flags 0xE3; 120 mg/dL at 10 min; warning 0x01, cal/temp 0x04, status 0x02
    # (flag-bit order, as Nordic's encoders); trend -1.0 (mg/dL)/min; quality 95 %
    result = decode("2aa7", bytes.fromhex("0de378000a00010402f6ff5f00"))
    assert result.fields["records"] == [
        {
            "size": 13,
            "glucose_mg_dl": 120.0,
            "time_offset_min": 10,
            "sensor_status_annunciation": {
                "warning": 1,
                "cal_temp": 4,
                "status": 2,
                "flags": ["result_below_patient_low", "calibration_recommended", "device_battery_low"],
            },
            "trend_mg_dl_per_min": -1.0,
            "quality_percent": 95.0,
            "e2e_crc": None,
        }
    ]
    assert result.measurements[0].status == (
        "result_below_patient_low",
        "calibration_recommended",
        "device_battery_low",
    )


def test_several_records_in_one_value() -> None:
    # constructed: two records, the second one NaN (no reading for it)
    result = decode("2aa7", bytes.fromhex("060078000500" + "0600ff070a00" + "06007a000f00"))
    assert [r["glucose_mg_dl"] for r in result.fields["records"]] == [120.0, "NaN", 122.0]
    assert [(m.value, m.time_offset) for m in result.measurements] == [
        (120.0, timedelta(minutes=5)),
        (122.0, timedelta(minutes=15)),
    ]


@pytest.mark.parametrize(
    ("hex_value", "offset"),
    [
        ("", 0),  # empty
        ("06e30c1000", 0),  # Nordic #L226-L257: size 6 but flags need 13
        ("00", 0),  # size 0 could loop forever
        ("070078000500", 0),  # size neither 6 nor 8
        ("0800780005", 0),  # size 8 but 5 octets
        ("06007800050006", 6),  # a stray octet after a record
        ("0600780005000600", 6),  # second record cut
    ],
)
def test_malformed_cgm_is_refused(hex_value: str, offset: int) -> None:
    with pytest.raises(MalformedPayload) as caught:
        decode("2aa7", bytes.fromhex(hex_value))
    assert caught.value.offset == offset

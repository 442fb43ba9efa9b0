"""IEEE 11073-20601 SFLOAT and FLOAT, including the reserved values and the biased-exponent trap."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.ble.ieee11073 import (
    SpecialValue,
    encode_float,
    encode_sfloat,
    encode_sfloat_special,
    float_from_raw,
    is_number,
    json_value,
    parse_float,
    parse_sfloat,
    sfloat_from_raw,
)
from devices.errors import EncodeError, MalformedPayload


@pytest.mark.parametrize(
    ("octets", "value"),
    [
        # NordicSemiconductor/Android-BLE-Library@4a86e6c DataTest.java#L34-L38: 10.1f -> {0x65, 0xF0}
        (b"\x65\xf0", 10.1),
        # IEEE 11073-20601 definition: exponent -1, mantissa 0xFF6 = -10
        (b"\xf6\xff", -1.0),
        # PHD Transcoding White Paper BP example (rickosborne/es-js-ts blood-pressure test): 114
        (b"\x72\x00", 114.0),
        # constructed: exponent 0, largest positive ordinary mantissa 0x7FD
        (b"\xfd\x07", 2045.0),
        # constructed: exponent 0, mantissa 0x803 = -2045 (the last before the reserved range)
        (b"\x03\x08", -2045.0),
        # constructed: exponent +7, mantissa 1
        (b"\x01\x70", 1e7),
        # constructed: exponent -8, mantissa 1
        (b"\x01\x80", 1e-8),
        # Nordic BloodPressureMeasurementDataCallbackTest#L112-L160: 0xF0BD = 189e-1
        (b"\xbd\xf0", 18.9),
        # Pitfall 1 of ble-gatt-formats.md: 0A 70 is 10 x 10^7 (a biased decoder says 1.0)
        (b"\x0a\x70", 1.0e8),
        # Pitfall 1: PLX "00 62 80 48 80" SpO2 octets 62 80 are 98e-8 (biased: 98 %)
        (b"\x62\x80", 9.8e-7),
        # Pitfall 5: 0D 0E is exponent 0, mantissa 0xE0D = -499 (not 3597)
        (b"\x0d\x0e", -499.0),
    ],
)
def test_sfloat_values(octets: bytes, value: float) -> None:
    decoded = parse_sfloat(octets)
    assert isinstance(decoded, float)
    assert decoded == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize(
    ("octets", "value"),
    [
        # Nordic TemperatureMeasurementDataCallbackTest#L43-L75: B0 0E 00 FE = 3760e-2
        (b"\xb0\x0e\x00\xfe", 37.6),
        # ble-gatt-formats.md example: 87 D6 12 FE = 1234567e-2
        (b"\x87\xd6\x12\xfe", 12345.67),
        # PHD Transcoding White Paper 4.1 (rickosborne temperature test): 72 01 00 FF = 370e-1
        (b"\x72\x01\x00\xff", 37.0),
        # Pitfall 1: 72 01 00 7F is 370 x 10^127 (a biased decoder says 37.0)
        (b"\x72\x01\x00\x7f", 3.7e129),
        # constructed: mantissa -1, exponent 0
        (b"\xff\xff\xff\x00", -1.0),
        # constructed: smallest exponent
        (b"\x01\x00\x00\x80", 1e-128),
    ],
)
def test_float_values(octets: bytes, value: float) -> None:
    decoded = parse_float(octets)
    assert isinstance(decoded, float)
    assert decoded == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize(
    ("octets", "special"),
    [
        # PHD Transcoding White Paper reserved values (also Nordic Data.java#L426-L462)
        (b"\xff\x07", "NaN"),
        (b"\x00\x08", "NRes"),
        (b"\xfe\x07", "+INF"),
        (b"\x02\x08", "-INF"),
        (b"\x01\x08", "RFU"),
    ],
)
def test_sfloat_reserved_values_are_never_numbers(octets: bytes, special: str) -> None:
    decoded = parse_sfloat(octets)
    assert isinstance(decoded, SpecialValue)
    assert decoded == special
    assert json_value(decoded) == special
    assert type(json_value(decoded)) is str
    assert not is_number(decoded)


@pytest.mark.parametrize(
    ("octets", "special"),
    [
        (b"\xff\xff\x7f\x00", "NaN"),
        (b"\x00\x00\x80\x00", "NRes"),
        (b"\xfe\xff\x7f\x00", "+INF"),
        (b"\x02\x00\x80\x00", "-INF"),
        (b"\x01\x00\x80\x00", "RFU"),
    ],
)
def test_float_reserved_values_are_never_numbers(octets: bytes, special: str) -> None:
    decoded = parse_float(octets)
    assert isinstance(decoded, SpecialValue)
    assert decoded == special


def test_reserved_mantissas_with_other_exponents_are_numbers() -> None:
    # only exponent 0 is reserved: 0x17FF is 2047 x 10^1
    assert parse_sfloat(b"\xff\x17") == 20470.0
    assert parse_float(b"\xff\xff\x7f\x01") == 83886070.0


@pytest.mark.parametrize("octets", [b"", b"\x65"])
def test_truncated_sfloat(octets: bytes) -> None:
    with pytest.raises(MalformedPayload) as caught:
        parse_sfloat(octets)
    assert caught.value.offset == 0


@pytest.mark.parametrize("octets", [b"", b"\xb0", b"\xb0\x0e\x00"])
def test_truncated_float(octets: bytes) -> None:
    with pytest.raises(MalformedPayload):
        parse_float(octets)


def test_offset_past_the_end_and_negative_offset() -> None:
    with pytest.raises(MalformedPayload):
        parse_sfloat(b"\x65\xf0", 1)
    with pytest.raises(MalformedPayload):
        parse_sfloat(b"\x65\xf0", -1)
    assert parse_sfloat(b"\x00\x65\xf0", 1) == 10.1


@given(st.integers(0, 0xFFFF))
def test_every_sfloat_decodes_to_a_finite_number_or_a_special(raw: int) -> None:
    value = sfloat_from_raw(raw)
    assert isinstance(value, SpecialValue) == (0x07FE <= raw <= 0x0802)
    if not isinstance(value, SpecialValue):
        assert math.isfinite(value)


@given(st.integers(0, 0xFFFFFFFF))
def test_every_float_decodes_to_a_finite_number_or_a_special(raw: int) -> None:
    value = float_from_raw(raw)
    assert isinstance(value, SpecialValue) == (0x007FFFFE <= raw <= 0x00800002)
    if not isinstance(value, SpecialValue):
        assert math.isfinite(value)


@given(st.integers(-2048, 2047), st.integers(-8, 7))
def test_sfloat_round_trip(mantissa: int, exponent: int) -> None:
    if exponent == 0 and mantissa in (2046, 2047, -2048, -2047, -2046):
        with pytest.raises(EncodeError):
            encode_sfloat(mantissa, exponent)
        return
    assert parse_sfloat(encode_sfloat(mantissa, exponent)) == pytest.approx(
        mantissa * 10.0**exponent, rel=1e-12
    )


@given(st.integers(-(2**23), 2**23 - 1), st.integers(-128, 127))
def test_float_round_trip(mantissa: int, exponent: int) -> None:
    if exponent == 0 and mantissa in (2**23 - 2, 2**23 - 1, -(2**23), -(2**23) + 1, -(2**23) + 2):
        with pytest.raises(EncodeError):
            encode_float(mantissa, exponent)
        return
    assert parse_float(encode_float(mantissa, exponent)) == pytest.approx(mantissa * 10.0**exponent, rel=1e-9)


def test_encoder_refuses_out_of_range() -> None:
    with pytest.raises(EncodeError):
        encode_sfloat(2048, 0)
    with pytest.raises(EncodeError):
        encode_sfloat(1, 8)
    with pytest.raises(EncodeError):
        encode_float(2**23, 0)
    assert encode_sfloat_special(SpecialValue.NAN) == b"\xff\x07"

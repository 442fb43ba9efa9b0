"""Record Access Control Point 0x2A52: requests as literal octets, responses decoded."""

from __future__ import annotations

from datetime import datetime

import pytest

from devices.ble import DecodeResult, decode
from devices.ble.racp import (
    RacpResponse,
    abort_operation,
    decode_racp_request,
    delete_all_records,
    parse_response,
    report_all_records,
    report_first_record,
    report_last_record,
    report_number_of_all_records,
    report_number_of_records_from,
    report_records_between,
    report_records_from,
    report_records_since,
)
from devices.errors import EncodeError, MalformedPayload

RACP = "2a52"


def test_request_octets() -> None:
    # ble-gatt-formats.md "Typical byte strings"; Nordic RecordAccessControlPointData.java
    assert report_all_records() == b"\x01\x01"
    assert report_records_from(10) == b"\x01\x03\x01\x0a\x00"
    assert report_records_from(0x1234) == b"\x01\x03\x01\x34\x12"
    assert report_records_between(1, 5) == b"\x01\x04\x01\x01\x00\x05\x00"
    assert report_records_since(datetime(2024, 1, 15, 8, 30)) == b"\x01\x03\x02\xe8\x07\x01\x0f\x08\x1e\x00"
    assert report_first_record() == b"\x01\x05"
    assert report_last_record() == b"\x01\x06"
    assert report_number_of_all_records() == b"\x04\x01"
    assert report_number_of_records_from(10) == b"\x04\x03\x01\x0a\x00"
    assert delete_all_records() == b"\x02\x01"
    assert abort_operation() == b"\x03\x00"


@pytest.mark.parametrize("bad", [-1, 0x10000])
def test_request_operands_out_of_range(bad: int) -> None:
    with pytest.raises(EncodeError):
        report_records_from(bad)
    with pytest.raises(ValueError):  # EncodeError is a ValueError too
        report_records_between(0, bad) if bad > 0 else report_records_between(bad, 0)


def test_empty_range_is_refused() -> None:
    with pytest.raises(EncodeError):
        report_records_between(5, 1)


def test_every_request_decodes_as_written() -> None:
    assert decode_racp_request(b"\x01\x03\x01\x0a\x00") == DecodeResult(
        "2a52",
        "record_access_control_point",
        {
            "direction": "write",
            "op_code": 1,
            "op_code_name": "report_stored_records",
            "operator": 3,
            "operator_name": "greater_than_or_equal",
            "filter_type": 1,
            "filter_type_name": "sequence_number",
            "minimum": 10,
            "maximum": None,
        },
        (),
    )
    between = decode_racp_request(report_records_between(1, 5)).fields
    assert (between["minimum"], between["maximum"]) == (1, 5)
    since = decode_racp_request(report_records_since(datetime(2024, 1, 15, 8, 30))).fields
    assert (since["filter_type_name"], since["minimum"]) == ("user_facing_time", "2024-01-15T08:30:00")
    at_most = decode_racp_request(b"\x01\x02\x01\x07\x00").fields
    assert (at_most["minimum"], at_most["maximum"]) == (None, 7)
    assert decode_racp_request(abort_operation()).fields["op_code_name"] == "abort_operation"


@pytest.mark.parametrize(
    "octets",
    [
        b"\x01",  # no operator
        b"\x05\x00\x01\x00",  # a response, not a request
        b"\x01\x00",  # report with null operator
        b"\x01\x07",  # reserved operator
        b"\x03\x01",  # abort with an operator
        b"\x01\x03\x01\x0a",  # operand cut
        b"\x01\x03\x03\x0a\x00",  # reserved filter type
        b"\x01\x03\x02\x00\x00\x01\x0f\x08\x1e\x00",  # user facing time with year 0
        b"\x01\x01\x00",  # operand where none belongs
    ],
)
def test_malformed_requests(octets: bytes) -> None:
    with pytest.raises(MalformedPayload):
        decode_racp_request(octets)


def test_success_response() -> None:
    # ble-gatt-formats.md: "done: 06 00 01 01"
    assert decode(RACP, b"\x06\x00\x01\x01") == DecodeResult(
        "2a52",
        "record_access_control_point",
        {
            "direction": "indication",
            "op_code": 6,
            "op_code_name": "response_code",
            "operator": 0,
            "number_of_records": None,
            "request_op_code": 1,
            "request_op_code_name": "report_stored_records",
            "response_code": 1,
            "response_code_name": "success",
        },
        (),
    )
    assert parse_response(b"\x06\x00\x01\x01") == RacpResponse(6, None, 1, 1)
    assert parse_response(b"\x06\x00\x01\x01").succeeded


def test_no_records_found_is_not_a_failure() -> None:
    response = parse_response(b"\x06\x00\x01\x06")
    assert response.response_code == 6
    assert response.succeeded


def test_procedure_not_completed_is_a_failure() -> None:
    assert not parse_response(b"\x06\x00\x01\x08").succeeded


def test_number_of_records() -> None:
    # Nordic RecordAccessControlPointDataCallbackTest: count as uint16
    assert parse_response(b"\x05\x00\x2a\x01") == RacpResponse(5, number_of_records=298)
    fields = decode(RACP, b"\x05\x00\x2a\x01").fields
    assert (fields["op_code_name"], fields["number_of_records"]) == (
        "number_of_stored_records_response",
        298,
    )


def test_unknown_response_value_is_named_reserved() -> None:
    assert decode(RACP, b"\x06\x00\x01\x7f").fields["response_code_name"] == "reserved"


@pytest.mark.parametrize(
    "octets",
    [
        b"",
        b"\x06",
        b"\x05\x00\x03\x02\x01",  # Nordic #L183-L188: 3-octet count
        b"\x05\x00\x03",  # 1-octet count (Nordic accepts it; GLS says uint16)
        b"\x05\x00\x03\x00\x00\x00",  # 4-octet count
        b"\x01\x03\x01\x02\x00",  # Nordic #L197-L202: a request op code
        b"\x06\x01\x01\x01",  # response with an operator
        b"\x06\x00\x01",  # response code cut
        b"\x06\x00\x01\x01\x00",  # one octet too many
        b"\x07\x00\x00\x00",  # reserved op code
    ],
)
def test_malformed_responses(octets: bytes) -> None:
    with pytest.raises(MalformedPayload):
        decode(RACP, octets)

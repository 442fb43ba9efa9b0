"""Record Access Control Point (0x2A52, write + indicate; Glucose, CGM and Pulse Oximeter).

Value: Op Code u8 · Operator u8 · Operand. The client writes requests (report, delete, abort,
count stored records); the server indicates a Number of Stored Records response (0x05, uint16)
or a Response Code (0x06: request op code, response value). Record filters (operators <=, >=,
within range) start with a filter type: 0x01 sequence number (GLS; time offset in CGMS), both
uint16, or 0x02 user facing time (Date Time).

Sync loop: ``report_records_from(last_sequence + 1)`` (or ``report_all_records()`` the first
time), records arrive as notifications on their own characteristic, and the Response Code
indication ends the procedure; ``no_records_found`` is not an error.

RACP values are exact: a length that differs from the op code's definition is malformed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any, Final

from devices.ble.date_time import DATE_TIME_SIZE, device_time_at, encode_date_time
from devices.ble.reader import Reader
from devices.ble.result import DecodeResult
from devices.errors import EncodeError

CHARACTERISTIC: Final = "2a52"
NAME: Final = "record_access_control_point"


class OpCode(IntEnum):
    REPORT_STORED_RECORDS = 0x01
    DELETE_STORED_RECORDS = 0x02
    ABORT_OPERATION = 0x03
    REPORT_NUMBER_OF_STORED_RECORDS = 0x04
    NUMBER_OF_STORED_RECORDS_RESPONSE = 0x05
    RESPONSE_CODE = 0x06


class Operator(IntEnum):
    NULL = 0x00
    ALL_RECORDS = 0x01
    LESS_THAN_OR_EQUAL = 0x02
    GREATER_THAN_OR_EQUAL = 0x03
    WITHIN_RANGE = 0x04
    FIRST_RECORD = 0x05
    LAST_RECORD = 0x06


class FilterType(IntEnum):
    SEQUENCE_NUMBER = 0x01
    USER_FACING_TIME = 0x02


class ResponseCode(IntEnum):
    SUCCESS = 0x01
    OP_CODE_NOT_SUPPORTED = 0x02
    INVALID_OPERATOR = 0x03
    OPERATOR_NOT_SUPPORTED = 0x04
    INVALID_OPERAND = 0x05
    NO_RECORDS_FOUND = 0x06
    ABORT_UNSUCCESSFUL = 0x07
    PROCEDURE_NOT_COMPLETED = 0x08
    OPERAND_NOT_SUPPORTED = 0x09


_REQUESTS: Final = frozenset(
    {
        OpCode.REPORT_STORED_RECORDS,
        OpCode.DELETE_STORED_RECORDS,
        OpCode.ABORT_OPERATION,
        OpCode.REPORT_NUMBER_OF_STORED_RECORDS,
    }
)
_FILTERED: Final = frozenset(
    {Operator.LESS_THAN_OR_EQUAL, Operator.GREATER_THAN_OR_EQUAL, Operator.WITHIN_RANGE}
)


def _name(enum: type[IntEnum], value: int) -> str:
    try:
        return enum(value).name.lower()
    except ValueError:
        return "reserved"


@dataclass(frozen=True, slots=True)
class RacpResponse:
    """A server indication: a record count (0x05) or the outcome of a request (0x06)."""

    op_code: int
    number_of_records: int | None = None
    request_op_code: int | None = None
    response_code: int | None = None

    @property
    def succeeded(self) -> bool:
        """The request completed: a count, success, or "no records found" (nothing to send)."""
        return self.op_code == OpCode.NUMBER_OF_STORED_RECORDS_RESPONSE or self.response_code in (
            ResponseCode.SUCCESS,
            ResponseCode.NO_RECORDS_FOUND,
        )


# ---- requests (client -> server) -------------------------------------------------------------


def _u16(value: int, what: str) -> bytes:
    if not 0 <= value <= 0xFFFF:
        raise EncodeError(f"{what} {value} does not fit uint16")
    return value.to_bytes(2, "little")


def encode_request(op_code: OpCode, operator: Operator, operand: bytes = b"") -> bytes:
    """A raw request; prefer the named helpers below."""
    if op_code not in _REQUESTS:
        raise EncodeError(f"op code {op_code!r} is not a client request")
    return bytes((op_code, operator)) + operand


def report_all_records() -> bytes:
    return encode_request(OpCode.REPORT_STORED_RECORDS, Operator.ALL_RECORDS)


def report_records_from(sequence_number: int) -> bytes:
    """Report the records whose sequence number (CGMS: time offset) is >= ``sequence_number``."""
    operand = bytes((FilterType.SEQUENCE_NUMBER,)) + _u16(sequence_number, "sequence number")
    return encode_request(OpCode.REPORT_STORED_RECORDS, Operator.GREATER_THAN_OR_EQUAL, operand)


def report_records_between(first: int, last: int) -> bytes:
    """Report the records with ``first`` <= sequence number <= ``last``."""
    if first > last:
        raise EncodeError(f"range {first}..{last} is empty")
    operand = (
        bytes((FilterType.SEQUENCE_NUMBER,)) + _u16(first, "sequence number") + _u16(last, "sequence number")
    )
    return encode_request(OpCode.REPORT_STORED_RECORDS, Operator.WITHIN_RANGE, operand)


def report_records_since(moment: datetime) -> bytes:
    """Report the records whose user facing time (device local) is >= ``moment``."""
    operand = bytes((FilterType.USER_FACING_TIME,)) + encode_date_time(moment)
    return encode_request(OpCode.REPORT_STORED_RECORDS, Operator.GREATER_THAN_OR_EQUAL, operand)


def report_first_record() -> bytes:
    return encode_request(OpCode.REPORT_STORED_RECORDS, Operator.FIRST_RECORD)


def report_last_record() -> bytes:
    return encode_request(OpCode.REPORT_STORED_RECORDS, Operator.LAST_RECORD)


def report_number_of_all_records() -> bytes:
    return encode_request(OpCode.REPORT_NUMBER_OF_STORED_RECORDS, Operator.ALL_RECORDS)


def report_number_of_records_from(sequence_number: int) -> bytes:
    operand = bytes((FilterType.SEQUENCE_NUMBER,)) + _u16(sequence_number, "sequence number")
    return encode_request(OpCode.REPORT_NUMBER_OF_STORED_RECORDS, Operator.GREATER_THAN_OR_EQUAL, operand)


def delete_all_records() -> bytes:
    return encode_request(OpCode.DELETE_STORED_RECORDS, Operator.ALL_RECORDS)


def abort_operation() -> bytes:
    return encode_request(OpCode.ABORT_OPERATION, Operator.NULL)


# ---- decoding ------------------------------------------------------------------------------


def parse_response(data: bytes) -> RacpResponse:
    """Decode a server indication; a request op code or a wrong length is malformed."""
    r = Reader(data, "RACP indication")
    op_code = r.u8("Op Code")
    operator = r.u8("Operator")
    if op_code in _REQUESTS:
        raise r.error(f"op code 0x{op_code:02X} is a client request, not a server response", 0)
    if op_code not in (OpCode.NUMBER_OF_STORED_RECORDS_RESPONSE, OpCode.RESPONSE_CODE):
        raise r.error(f"op code 0x{op_code:02X} is reserved", 0)
    if operator != Operator.NULL:
        raise r.error(f"operator of a response must be 0x00 (null), not 0x{operator:02X}", 1)
    if r.remaining != 2:
        what = (
            "Number of Stored Records operand must be uint16"
            if op_code == OpCode.NUMBER_OF_STORED_RECORDS_RESPONSE
            else "Response Code operand must be 2 octets (request op code, response value)"
        )
        raise r.error(f"{what} ({r.remaining} octets given)")
    if op_code == OpCode.NUMBER_OF_STORED_RECORDS_RESPONSE:
        return RacpResponse(op_code, number_of_records=r.u16("Number of Stored Records"))
    request = r.u8("Request Op Code")
    response = r.u8("Response Code Value")
    return RacpResponse(op_code, request_op_code=request, response_code=response)


def decode_racp_response(data: bytes) -> DecodeResult:
    response = parse_response(data)
    fields: dict[str, Any] = {
        "direction": "indication",
        "op_code": response.op_code,
        "op_code_name": _name(OpCode, response.op_code),
        "operator": 0,
        "number_of_records": response.number_of_records,
        "request_op_code": response.request_op_code,
        "request_op_code_name": None,
        "response_code": response.response_code,
        "response_code_name": None,
    }
    if response.request_op_code is not None and response.response_code is not None:
        fields["request_op_code_name"] = _name(OpCode, response.request_op_code)
        fields["response_code_name"] = _name(ResponseCode, response.response_code)
    return DecodeResult(CHARACTERISTIC, NAME, fields)


def decode_racp_request(data: bytes) -> DecodeResult:
    """Decode a client request (what a collector writes), checking operator and operand."""
    r = Reader(data, "RACP request")
    op_code = r.u8("Op Code")
    operator = r.u8("Operator")
    if op_code not in _REQUESTS:
        raise r.error(f"op code 0x{op_code:02X} is not a client request", 0)
    fields: dict[str, Any] = {
        "direction": "write",
        "op_code": op_code,
        "op_code_name": _name(OpCode, op_code),
        "operator": operator,
        "operator_name": _name(Operator, operator),
        "filter_type": None,
        "filter_type_name": None,
        "minimum": None,
        "maximum": None,
    }
    if op_code == OpCode.ABORT_OPERATION:
        if operator != Operator.NULL:
            raise r.error(f"abort needs operator 0x00 (null), not 0x{operator:02X}", 1)
    elif operator == Operator.NULL or operator > Operator.LAST_RECORD:
        raise r.error(f"invalid operator 0x{operator:02X} for op code 0x{op_code:02X}", 1)
    if operator in _FILTERED:
        filter_type = r.u8("Filter Type")
        fields["filter_type"] = filter_type
        fields["filter_type_name"] = _name(FilterType, filter_type)
        count = 2 if operator == Operator.WITHIN_RANGE else 1
        bounds = [_filter_value(r, filter_type) for _ in range(count)]
        if operator == Operator.LESS_THAN_OR_EQUAL:
            fields["maximum"] = bounds[0]
        else:
            fields["minimum"] = bounds[0]
            fields["maximum"] = bounds[1] if count == 2 else None
    if r.remaining:
        raise r.error(f"{r.remaining} unexpected octet(s) after the request")
    return DecodeResult(CHARACTERISTIC, NAME, fields)


def _filter_value(r: Reader, filter_type: int) -> int | str | None:
    if filter_type == FilterType.SEQUENCE_NUMBER:
        return r.u16("Filter Parameter (uint16)")
    if filter_type == FilterType.USER_FACING_TIME:
        r.need(DATE_TIME_SIZE, "Filter Parameter (user facing time)")
        stamp = device_time_at(r.data, r.pos)
        if stamp.value is None:
            raise r.error("user facing time filter is not a valid date and time")
        r.pos += DATE_TIME_SIZE
        return stamp.value.isoformat()
    raise r.error(f"filter type 0x{filter_type:02X} is reserved", r.pos - 1)

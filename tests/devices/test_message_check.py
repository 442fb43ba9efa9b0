"""The message-level checks, once: parse_message starts with them, and the HTTP route runs the
same ones (check_message) before it authorizes the device a body names."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from devices.errors import MalformedPayload, TooManyReadings
from devices.message import Rules, check_message, decode_json, parse_message

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
HR = {"metric": "heart_rate", "value": 70, "unit": "/min", "measured_at": "2026-11-25T08:00:00Z"}


def test_the_device_is_the_one_the_body_or_the_transport_names() -> None:
    assert check_message({"device_id": "CUFF-1", "readings": [HR]}, device_id=None) == "CUFF-1"
    assert check_message({"readings": [HR]}, device_id="D") == "D"
    assert check_message(HR, device_id="D") == "D"  # the single-reading form


@pytest.mark.parametrize(
    ("obj", "fragment"),
    [
        ([1, 2], "JSON object"),
        ({"readings": []}, "device_id"),  # the device is checked first: it is what is authorized
        ({"device_id": "bad id!", "readings": [HR]}, "device_id"),
        ({"device_id": "CUFF-1", "readings": []}, "non-empty"),
        ({"device_id": "CUFF-1", "readings": {"a": 1}}, "array"),
        ({"device_id": "CUFF-1", **HR}, "no 'readings'"),  # an HTTP body must hold an array
    ],
)
def test_what_an_http_body_is_refused_for(obj: Any, fragment: str) -> None:
    with pytest.raises(MalformedPayload, match=fragment) as caught:
        check_message(obj, device_id=None, require_readings=True)
    assert not isinstance(caught.value, TooManyReadings)


def test_too_many_readings_is_its_own_error_with_the_limit_in_force() -> None:
    rules = Rules(max_readings=5)
    body = {"device_id": "CUFF-1", "readings": [HR] * 6}
    with pytest.raises(TooManyReadings, match="at most 5") as caught:
        check_message(body, device_id=None, rules=rules)
    assert (caught.value.count, caught.value.limit) == (6, 5)
    with pytest.raises(TooManyReadings):  # parse_message refuses it the same way
        parse_message(body, device_id=None, now=NOW, rules=rules)
    assert check_message({**body, "readings": [HR] * 5}, device_id=None, rules=rules) == "CUFF-1"


def test_an_http_body_is_decoded_without_the_payload_limit() -> None:
    big = b'{"pad": "' + b" " * (300 * 1024) + b'"}'  # over MAX_PAYLOAD_BYTES: the body limit bounds it
    assert decode_json(big, max_bytes=None)["pad"].isspace()
    with pytest.raises(MalformedPayload, match="over the"):
        decode_json(big)

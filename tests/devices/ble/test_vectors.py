"""Every vector of the contract's ``ble-vectors.json`` (``docs/contract/``).

Each vector names its public source in its ``source`` key. Valid vectors: every key of
``expect`` matches the decoded fields (floats to a relative 1e-6, as the file asks; keys it
does not list are not checked). Invalid vectors: the decoder raises MalformedPayload.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from devices.ble import decode
from devices.ble.ieee11073 import SpecialValue, json_value, parse_float, parse_sfloat
from devices.ble.racp import decode_racp_request
from devices.errors import MalformedPayload
from tests.support.paths import CONTRACT_DIR

VECTORS_FILE = CONTRACT_DIR / "ble-vectors.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))


def decode_vector(vector: dict[str, Any]) -> dict[str, Any]:
    """Decode a vector's bytes the way its kind says; return the fields to compare."""
    data = bytes.fromhex(vector["hex"])
    if vector["characteristic_uuid"] is None:
        parse = parse_sfloat if vector["name"].startswith("IEEE 11073-20601 SFLOAT") else parse_float
        value = parse(data)
        # a reserved value must come out as SpecialValue, never as a float (NaN or otherwise)
        assert isinstance(value, SpecialValue) or math.isfinite(value)
        return {"value": json_value(value)}
    if vector["expect"].get("direction") == "write":
        return decode_racp_request(data).fields
    return decode(vector["characteristic_uuid"], data).fields


def matches(expected: Any, actual: Any) -> bool:
    if isinstance(expected, float) and isinstance(actual, int | float) and not isinstance(actual, bool):
        return math.isclose(expected, actual, rel_tol=1e-6, abs_tol=1e-12)
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and matches(v, actual[k]) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(matches(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return type(expected) is type(actual) and expected == actual


def test_the_file_holds_every_kind_of_vector() -> None:
    ids = [v["id"] for v in VECTORS]
    assert len(ids) == len(set(ids)) == 58
    assert sum(not v["valid"] for v in VECTORS) == 12


@pytest.mark.parametrize("vector", [v for v in VECTORS if v["valid"]], ids=lambda v: str(v["id"]))
def test_valid_vector_decodes_to_its_expectation(vector: dict[str, Any]) -> None:
    fields = decode_vector(vector)
    wrong = {
        key: (expected, fields.get(key, "<absent>"))
        for key, expected in vector["expect"].items()
        if key not in fields or not matches(expected, fields[key])
    }
    assert wrong == {}, f"{vector['id']} ({vector['source']})"


@pytest.mark.parametrize("vector", [v for v in VECTORS if not v["valid"]], ids=lambda v: str(v["id"]))
def test_invalid_vector_is_refused(vector: dict[str, Any]) -> None:
    with pytest.raises(MalformedPayload) as caught:
        decode_vector(vector)
    assert caught.value.offset is not None
    assert caught.value.offset >= 0
    assert caught.value.reason


@pytest.mark.parametrize(
    "vector", [v for v in VECTORS if v["valid"] and v["characteristic_uuid"]], ids=lambda v: str(v["id"])
)
def test_decoded_fields_are_json(vector: dict[str, Any]) -> None:
    fields = decode_vector(vector)
    assert json.loads(json.dumps(fields, allow_nan=False)) == fields

"""Transaction Bundles and reading the server's answers, including hostile answers."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhir_export.bundle import (
    BundleEntry,
    outcome_reason,
    parse_transaction_response,
    raise_for_outcome,
    transaction,
)
from fhir_export.client import parse_retry_after
from fhir_export.errors import PermanentDeliveryError, TransientDeliveryError
from fhir_export.models import Identifier


def test_entries_are_conditional_creates() -> None:
    entry = BundleEntry(
        full_url="urn:uuid:1",
        identifier=Identifier("urn:rpm-ingest:observation", "dev:1-8867-4-20261125T083000Z"),
        resource={"resourceType": "Observation"},
    )
    assert transaction([entry]) == {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:1",
                "resource": {"resourceType": "Observation"},
                "request": {
                    "method": "POST",
                    "url": "Observation",
                    # system|value, percent-encoded as a query string
                    "ifNoneExist": "identifier=urn%3Arpm-ingest%3Aobservation%7C"
                    "dev%3A1-8867-4-20261125T083000Z",
                },
            }
        ],
    }


def _response(*statuses: str, location: str = "Observation/abc/_history/1") -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [{"response": {"status": s, "location": location}} for s in statuses],
    }


def test_response_entries_are_parsed() -> None:
    outcomes = parse_transaction_response(_response("201 Created", "200 OK"), 2)
    assert [(o.status, o.created, o.ok, o.reference) for o in outcomes] == [
        (201, True, True, "Observation/abc"),
        (200, False, True, "Observation/abc"),
    ]
    absolute = parse_transaction_response(_response("201", location="http://ehr/fhir/Device/9/_history/2"), 1)
    assert absolute[0].reference == "Device/9"
    failed = {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [
            {
                "response": {
                    "status": "422 Unprocessable",
                    "outcome": {
                        "resourceType": "OperationOutcome",
                        "issue": [{"severity": "error", "code": "invalid", "diagnostics": "bad unit"}],
                    },
                }
            }
        ],
    }
    [one] = parse_transaction_response(failed, 1)
    assert (one.ok, one.status, one.reason, one.reference) == (False, 422, "bad unit", None)


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "text",
        {"resourceType": "OperationOutcome"},
        {"resourceType": "Bundle", "type": "searchset", "entry": []},
        {"resourceType": "Bundle", "type": "transaction-response"},
        {"resourceType": "Bundle", "type": "transaction-response", "entry": [{}]},
        {"resourceType": "Bundle", "type": "transaction-response", "entry": [None, None]},
        {"resourceType": "Bundle", "type": "transaction-response", "entry": [{"response": {}}] * 2},
        {"resourceType": "Bundle", "type": "transaction-response",
         "entry": [{"response": {"status": "OK"}}] * 2},
        _response("201 Created"),  # one entry for two requests
    ],
)  # fmt: skip
def test_malformed_answers_are_transient(body: object) -> None:
    with pytest.raises(TransientDeliveryError):
        parse_transaction_response(body, 2)


def test_operation_outcome_names_the_entries() -> None:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": "invalid", "details": {"text": "wrong unit"},
             "expression": ["Bundle.entry[3].resource.valueQuantity.code"]},
            {"severity": "error", "code": "not-found", "diagnostics": "no such patient",
             "location": ["Bundle.entry[7]"]},
            {"severity": "error", "code": "processing"},
            "junk",
        ],
    }  # fmt: skip
    reason, per_entry = outcome_reason(body)
    assert per_entry == {3: ["wrong unit"], 7: ["no such patient"]}
    assert reason.startswith("wrong unit at Bundle.entry[3]")
    assert (
        outcome_reason({"resourceType": "OperationOutcome", "issue": [{"details": {"text": "x" * 5000}}]})[0]
        == "x" * 1000
    )
    assert outcome_reason("<html>") == ("no OperationOutcome in the answer", {})


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, PermanentDeliveryError),
        (404, PermanentDeliveryError),
        (412, PermanentDeliveryError),
        (422, PermanentDeliveryError),
        (408, TransientDeliveryError),
        (409, TransientDeliveryError),
        (429, TransientDeliveryError),
        (500, TransientDeliveryError),
        (502, TransientDeliveryError),
        (503, TransientDeliveryError),
    ],
)
def test_status_classification(status: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        raise_for_outcome(status, None, None)


def test_retry_after_forms() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(" 0 ", now) == 0.0
    assert parse_retry_after("999999999", now) == 3600.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now) == pytest.approx(30.0)
    assert parse_retry_after("Tue, 14 Nov 2020 22:13:50 GMT", now) == 0.0
    for junk in ("-5", "soon", "", "1.5", "\x00", None):
        assert parse_retry_after(junk, now) is None


@settings(max_examples=300, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["resourceType", "type", "entry", "response", "status", "issue",
                         "expression", "details", "text", "location", "outcome"]),
        children, max_size=5),
    max_leaves=30,
))  # fmt: skip
def test_hostile_answers_raise_only_documented_errors(body: object) -> None:
    try:
        parse_transaction_response(body, 1)
    except TransientDeliveryError:
        pass
    outcome_reason(body)

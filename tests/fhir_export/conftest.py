"""Fixtures for the FHIR export tests: the mapper and the real local FHIR server (reading and
item builders in tests/support/fhir_items.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fhir_export.mapping import ObservationMapper
from fhir_export.table import build_table
from tests.support.fhir_test_server import Ehr, FhirTestServer, run_fhir_server


@pytest.fixture(scope="session")
def mapper() -> ObservationMapper:
    return ObservationMapper(build_table())


@pytest.fixture(scope="session")
def fhir_server() -> Iterator[FhirTestServer]:
    with run_fhir_server() as server:
        yield server


@pytest.fixture
def ehr(fhir_server: FhirTestServer) -> Ehr:
    """A clean server (no auth, no faults) holding one Patient."""
    fhir_server.reset()
    patient = fhir_server.create(
        {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "MRN-1"}]}
    )
    return Ehr(fhir_server, patient["id"])

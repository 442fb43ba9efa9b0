"""Fixtures for the EHR tests: a real database per test and the real local FHIR server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fhir_test_server import FhirTestServer, run_fhir_server


@pytest.fixture(scope="session")
def fhir_server() -> Iterator[FhirTestServer]:
    with run_fhir_server() as server:
        yield server


@pytest.fixture
def ehr(fhir_server: FhirTestServer) -> FhirTestServer:
    """The local FHIR server, emptied, without auth or faults."""
    fhir_server.reset()
    return fhir_server

"""Fixtures for the export tests: a real database per test, the real local FHIR server, and a
linked patient whose readings go through the real pipeline (helpers in tests/support/export.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from psycopg_pool import ConnectionPool

from tests.support.export import Home, make_home
from tests.support.fhir_test_server import FhirTestServer, run_fhir_server


@pytest.fixture
def home(pool: ConnectionPool) -> Home:
    """A linked patient (FHIR id ``pat-1``) with a blood-pressure monitor."""
    return make_home(pool, fhir_patient_id="pat-1")


@pytest.fixture(scope="session")
def fhir_server() -> Iterator[FhirTestServer]:
    with run_fhir_server() as server:
        yield server


@pytest.fixture
def ehr(fhir_server: FhirTestServer) -> FhirTestServer:
    """The local FHIR server, emptied, without auth or faults."""
    fhir_server.reset()
    return fhir_server

"""A real Orthanc (DICOMweb plugin) for the DICOM delivery tests, emptied before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.orthanc import Orthanc


@pytest.fixture(scope="session")
def orthanc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orthanc]:
    with Orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        yield server


@pytest.fixture
def orthanc(orthanc_server: Orthanc) -> Orthanc:
    orthanc_server.clear()
    return orthanc_server

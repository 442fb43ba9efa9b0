"""Helpers for the EHR tests: Patients as an EHR holds them, and a reader of the local server."""

from __future__ import annotations

from typing import Any

from fhir_export.auth import NoAuth
from fhir_export.client import build_http_client
from fhir_export.reads import FhirReader
from tests.support.fhir_test_server import FhirTestServer

MRN_SYSTEM = "urn:oid:2.16.840.1.113883.19.5"


def ehr_patient(fhir_id: str, mrn: str | None, *, name: str = "Ada Example", **extra: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Patient", "id": fhir_id, "name": [{"text": name}], **extra}
    if mrn is not None:
        resource["identifier"] = [{"system": MRN_SYSTEM, "value": mrn}]
    return resource


def reader(server: FhirTestServer, **options: Any) -> FhirReader:
    return FhirReader(build_http_client(timeout_s=10), server.base_url, NoAuth(), **options)

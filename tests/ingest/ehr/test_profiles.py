"""The clinic's Observation profiles (base FHIR vital signs, US Core, HL7 Personal Health Device)
through the real export path to the local FHIR server, which checks every resource against the
profiles' StructureDefinitions (tests/fhir_server/profiles: US Core differentials, the PHD IG's
constraints) and refuses what breaks them; every stored resource also parses as FHIR R4B."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from psycopg_pool import ConnectionPool

from fhir_export.auth import NoAuth
from fhir_export.client import FhirClient, RetryPolicy, build_http_client
from fhir_export.mapping import ObservationMapper
from fhir_export.table import build_table
from fhir_export.worker import Backoff, ExportWorker
from ingest.export import profiles as clinic_profiles
from ingest.export.fhir_devices import DeviceRegistry
from ingest.export.outbox import PgOutbox
from ingest.pipeline import Envelope
from ingest.store.deadletters import DeadLetter
from tests.support.export import Home, at, bp, ehr_patient, hr, make_home
from tests.support.fhir_test_server import FhirTestServer

US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"
PHD = "http://hl7.org/fhir/uv/phd/StructureDefinition/"
MDC = "urn:iso:std:iso:11073:10101"
PHD_CATEGORIES = "http://hl7.org/fhir/uv/phd/CodeSystem/PhdObservationCategories"
GATEWAY = "http://hl7.org/fhir/StructureDefinition/observation-gatewayDevice"
FAST = RetryPolicy(attempts=2, initial_s=0.01, max_wait_s=1.0, jitter_s=0.01)


def reading(metric: str, value: float, unit: str, minute: float) -> dict[str, Any]:
    return {"metric": metric, "value": value, "unit": unit, "measured_at": at(minute)}


EVERY_METRIC = [
    hr(72, minute=0),
    reading("respiratory_rate", 16, "/min", 1),
    reading("spo2", 96, "%", 2),
    reading("body_temperature", 37.1, "Cel", 3),
    reading("body_weight", 81.5, "kg", 4),
    reading("blood_glucose", 105, "mg/dL", 5),
    reading("steps", 4200, "{steps}", 6),
    *bp(128, 84, 99, minute=7),
    *bp(131, None, minute=8),  # a panel without diastolic (dataAbsentReason)
]


@contextmanager
def worker_for(pool: ConnectionPool, ehr: FhirTestServer) -> Iterator[ExportWorker]:
    mapper = ObservationMapper(build_table())
    with build_http_client(timeout_s=10, connect_timeout_s=2.0) as http:
        client = FhirClient(http, ehr.base_url, NoAuth(), retry=FAST)
        registry = DeviceRegistry(client, pool, base_url=client.base_url, device_system=mapper.device_system)
        yield ExportWorker(
            PgOutbox(pool, worker="t"), registry, mapper, backoff=Backoff(initial_s=5), rng=random.Random(1)
        )


def ingest_via_gateway(home: Home, readings: list[dict[str, Any]], gateway: str | None) -> None:
    body: dict[str, Any] = {"readings": readings}
    if gateway is not None:
        body["gateway_id"] = gateway
    envelope = Envelope(
        source="test", raw=json.dumps(body).encode(), received_at=datetime.now(UTC), device_id=home.device_id
    )
    letters: list[DeadLetter] = []
    with home.pool.connection() as conn, conn.transaction():
        (outcome,) = home.pipeline.process(conn, [envelope], collect=letters)
    assert letters == [] and not outcome.rejected, (letters, outcome)


def export_all(pool: ConnectionPool, ehr: FhirTestServer, profile: str, gateway: str | None) -> Home:
    ehr_patient(ehr, "pat-1")
    home = make_home(pool, fhir_patient_id="pat-1")
    home.execute("UPDATE clinics SET observation_profile = %s WHERE id = 'default'", (profile,))
    clinic_profiles.forget()
    ingest_via_gateway(home, EVERY_METRIC, gateway)
    with worker_for(pool, ehr) as worker:
        for _ in range(10):
            home.make_due()
            if worker.run_once() == 0:
                break
    failed = [(r["export_key"], r["last_error"]) for r in home.rows() if r["status"] != "sent"]
    assert failed == [], failed  # the server refuses what breaks a profile: nothing did
    return home


def structure(resource: dict[str, Any]) -> None:
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def by_code(observations: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for obs in observations:
        loinc = next(c["code"] for c in obs["code"]["coding"] if c["system"] == "http://loinc.org")
        found.setdefault(loinc, obs)
    return found


def test_base_profile_is_what_the_export_always_sent(pool: ConnectionPool, ehr: FhirTestServer) -> None:
    export_all(pool, ehr, "base", "GW-1")
    observations = ehr.search("Observation")
    assert len(observations) == 9
    for obs in observations:
        structure(obs)
        assert not any(p.startswith((US_CORE, PHD)) for p in obs.get("meta", {}).get("profile", []))
        assert "extension" not in obs


def test_us_core_vital_signs(pool: ConnectionPool, ehr: FhirTestServer) -> None:
    export_all(pool, ehr, "us-core", None)
    observations = by_code(ehr.search("Observation"))
    expected = {
        "8867-4": "us-core-heart-rate",
        "9279-1": "us-core-respiratory-rate",
        "59408-5": "us-core-pulse-oximetry",
        "8310-5": "us-core-body-temperature",
        "29463-7": "us-core-body-weight",
        "85354-9": "us-core-blood-pressure",
    }
    for loinc, name in expected.items():
        profiles = observations[loinc]["meta"]["profile"]
        assert US_CORE + name in profiles and US_CORE + "us-core-vital-signs" in profiles, loinc
        structure(observations[loinc])
    assert not any(p.startswith(US_CORE) for p in observations["2339-0"].get("meta", {}).get("profile", []))


def test_phd_device_gateway_and_identifiers(pool: ConnectionPool, ehr: FhirTestServer) -> None:
    export_all(pool, ehr, "phd", "0A0B0C0D0E0F")
    observations = by_code(ehr.search("Observation"))
    devices = {d["id"]: d for d in ehr.search("Device")}
    heart = observations["8867-4"]
    assert heart["meta"]["profile"][-1] == PHD + "PhdNumericObservation"
    assert heart["code"]["coding"][0] == {"system": MDC, "code": "147842", "display": "MDC_ECG_HEART_RATE"}
    category = {"system": PHD_CATEGORIES, "code": "phd-observation", "display": "PHD generated"}
    assert category in [c for cat in heart["category"] for c in cat["coding"]]
    phd_ids = [i["value"] for i in heart["identifier"] if "system" not in i]
    assert phd_ids == [
        f"F0-F1-F2-FF-FE-F3-F4-F5-pat-1-{at(0).replace('-', '').replace(':', '').rstrip('Z')}Z-147842"
    ]
    device = devices[heart["device"]["reference"].split("/")[1]]
    assert device["meta"]["profile"] == [PHD + "PhdDevice"]
    assert device["type"]["coding"][0]["code"] == "65573"
    assert device["specialization"][0]["systemType"]["coding"][0]["code"] == "528391"  # a BP monitor
    (gateway_ext,) = [e for e in heart["extension"] if e["url"] == GATEWAY]
    gateway = devices[gateway_ext["valueReference"]["reference"].split("/")[1]]
    assert gateway["meta"]["profile"] == [PHD + "PhgDevice"]
    assert {"type": {"coding": [{"system": "http://hl7.org/fhir/uv/phd/CodeSystem/ContinuaDeviceIdentifiers",
            "code": "SYSID"}]}, "system": "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680",
            "value": "0A-0B-0C-FF-FE-0D-0E-0F"} in gateway["identifier"]  # fmt: skip
    assert len(devices) == 2  # one measuring device, one gateway, whatever the number of readings
    panel = observations["85354-9"]
    assert panel["meta"]["profile"][-1] == PHD + "PhdCompoundNumericObservation"
    assert [c["code"]["coding"][0]["code"] for c in panel["component"]][:2] == ["150021", "150022"]
    steps = observations["55423-8"]
    assert not any(p.startswith(PHD) for p in steps.get("meta", {}).get("profile", []))  # no MDC code
    for resource in [*ehr.search("Observation"), *devices.values()]:
        structure(resource)


def transaction(ehr: FhirTestServer, resource: dict[str, Any]) -> Any:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"fullUrl": "urn:uuid:6f1c1f2e-4b5e-5d55-9a51-3c6b1a2f7e11", "resource": resource,
                   "request": {"method": "POST", "url": resource["resourceType"]}}],
    }  # fmt: skip
    return ehr.post_raw(json.dumps(bundle).encode())


def vital(code: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": "Patient/pat-1"},
        "effectiveDateTime": "2026-12-01T08:00:00Z",
        **extra,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("resource", "problem"),
    [
        (
            vital(
                "85354-9",
                meta={"profile": [US_CORE + "us-core-blood-pressure"]},
                component=[
                    {
                        "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                        "valueQuantity": {
                            "value": 120,
                            "unit": "mmHg",
                            "system": "http://unitsofmeasure.org",
                            "code": "mm[Hg]",
                        },
                    },
                ],
            ),
            "Observation.component:diastolic (us-core-blood-pressure): at least 1 required, found 0",
        ),
        (
            vital(
                "29463-7",
                meta={"profile": [US_CORE + "us-core-body-weight"]},
                valueQuantity={
                    "value": 80,
                    "unit": "st",
                    "system": "http://unitsofmeasure.org",
                    "code": "[stone_av]",
                },
            ),
            "[stone_av] is not in http://hl7.org/fhir/ValueSet/ucum-bodyweight|4.0.1",
        ),
        (
            vital(
                "59408-5",
                meta={"profile": [US_CORE + "us-core-pulse-oximetry"]},
                valueQuantity={"value": 97, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"},
            ),
            "Observation.code.coding:O2Sat (us-core-pulse-oximetry): at least 1 required, found 0",
        ),
        (
            vital(
                "8867-4",
                meta={"profile": [PHD + "PhdNumericObservation"]},
                valueQuantity={
                    "value": 70,
                    "unit": "/min",
                    "system": "http://unitsofmeasure.org",
                    "code": "/min",
                },
            ),
            "Observation.code.coding:MDCType (PhdBaseObservation): at least 1 required, found 0",
        ),
        (
            {
                "resourceType": "Device",
                "meta": {"profile": [PHD + "PhdDevice"]},
                "manufacturer": "Omron",
                "modelNumber": "X",
                "identifier": [{"system": "urn:rpm-ingest:device", "value": "D"}],
            },
            "Device.identifier:systemIdIdentifier (PhdDevice): at least 1 required, found 0",
        ),
        (vital("8867-4", meta={"profile": [US_CORE + "us-core-heart-rte"]}), "unknown profile"),
    ],
)
def test_the_server_refuses_what_breaks_a_profile(
    ehr: FhirTestServer, resource: dict[str, Any], problem: str
) -> None:
    ehr_patient(ehr, "pat-1")
    answer = transaction(ehr, resource)
    assert answer.status_code == 400
    texts = [issue["details"]["text"] for issue in answer.json()["issue"]]
    assert any(problem in text for text in texts), texts

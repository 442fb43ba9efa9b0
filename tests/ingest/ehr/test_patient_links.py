"""Patients linked to the EHR by MRN (contract ehr-interop.md §1): exactly one Patient links,
none or several never do, an EHR answering 500 or garbage changes nothing but the reason shown,
and linking releases the exports that waited. Real PostgreSQL, the real local FHIR server."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import pytest
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from ingest.ehr.linker import Linker
from ingest.store import roster
from tests.support.ehr import MRN_SYSTEM, ehr_patient, reader
from tests.support.export import hr, make_home
from tests.support.fhir_test_server import FhirTestServer


def linker(pool: ConnectionPool, ehr: FhirTestServer, *, retry_s: float = 3600) -> Linker:
    return Linker(pool, reader(ehr), identifier_system=MRN_SYSTEM, retry_s=retry_s)


def register(pool: ConnectionPool, mrn: str, name: str = "Ada Example") -> UUID:
    with pool.connection() as conn, conn.transaction():
        row = roster.create_patient(
            conn, clinic_id="default", mrn=mrn, display_name=name, fhir_patient_id=None
        )
    patient_id: UUID = row["id"]
    return patient_id


def patient(pool: ConnectionPool, patient_id: UUID) -> dict[str, Any]:
    with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT fhir_patient_id, ehr_link_status, ehr_link_detail, ehr_link_checked_at"
            " FROM patients WHERE id = %s",
            (patient_id,),
        )
        row = cur.fetchone()
    assert row is not None
    return row


def make_due(pool: ConnectionPool) -> None:
    with pool.connection() as conn, conn.transaction():
        conn.execute("UPDATE patients SET ehr_link_checked_at = now() - interval '2 hours'")


def test_exactly_one_patient_links_and_releases_waiting_exports(
    pool: ConnectionPool, ehr: FhirTestServer
) -> None:
    home = make_home(pool, fhir_patient_id=None)  # MRN-1, a reading waiting for the link
    home.ingest([hr(72)])
    assert [r["status"] for r in home.rows()] == ["waiting"]
    ehr.load_patients([ehr_patient("ehr-17", "MRN-1"), ehr_patient("ehr-18", "MRN-2")])

    assert linker(pool, ehr).run_once() == 1

    row = patient(pool, home.patient_id)
    assert row["fhir_patient_id"] == "ehr-17"
    assert row["ehr_link_status"] == "linked"
    assert row["ehr_link_detail"] == "found Patient/ehr-17 by MRN"
    assert [r["status"] for r in home.rows()] == ["pending"]  # released in the link's transaction


def test_ambiguous_mrn_is_never_guessed(pool: ConnectionPool, ehr: FhirTestServer) -> None:
    pid = register(pool, "MRN-7")
    ehr.load_patients([ehr_patient("a-1", "MRN-7"), ehr_patient("a-2", "MRN-7")])

    linker(pool, ehr).run_once()

    row = patient(pool, pid)
    assert row["fhir_patient_id"] is None
    assert row["ehr_link_status"] == "ambiguous"
    assert row["ehr_link_detail"] == "2 Patients in the EHR carry this MRN; link one by hand"


def test_ambiguity_beyond_the_first_page_counts(pool: ConnectionPool, ehr: FhirTestServer) -> None:
    """Eleven Patients with one MRN: the first page (10) and the total say ambiguous."""
    pid = register(pool, "MRN-8")
    ehr.load_patients([ehr_patient(f"b-{n}", "MRN-8") for n in range(11)])
    linker(pool, ehr).run_once()
    assert patient(pool, pid)["ehr_link_status"] == "ambiguous"
    assert "11 Patients" in patient(pool, pid)["ehr_link_detail"]


def test_absent_patient_is_retried_and_links_once_the_ehr_has_it(
    pool: ConnectionPool, ehr: FhirTestServer
) -> None:
    pid = register(pool, "MRN-9")
    links = linker(pool, ehr, retry_s=3600)
    links.run_once()
    row = patient(pool, pid)
    assert (row["ehr_link_status"], row["fhir_patient_id"]) == ("not_found", None)
    assert row["ehr_link_detail"] == "no Patient in the EHR carries this MRN"

    ehr.load_patients([ehr_patient("late-1", "MRN-9")])
    assert links.run_once() == 0  # not due before RPM_FHIR_PATIENT_LOOKUP_RETRY_S
    make_due(pool)
    fresh = linker(pool, ehr)  # a new run: nothing cached
    assert fresh.run_once() == 1
    assert patient(pool, pid)["fhir_patient_id"] == "late-1"


def test_ehr_answering_500_leaves_the_patient_pending_with_the_reason(
    pool: ConnectionPool, ehr: FhirTestServer
) -> None:
    pid = register(pool, "MRN-5")
    ehr.load_patients([ehr_patient("p-5", "MRN-5")])
    ehr.inject({"action": "status", "status": 500, "match": "/fhir/Patient", "count": 1})
    links = linker(pool, ehr)
    links.run_once()
    row = patient(pool, pid)
    assert (row["ehr_link_status"], row["fhir_patient_id"]) == ("pending", None)
    assert row["ehr_link_detail"] == "the EHR could not be asked: the EHR answered HTTP 500"

    make_due(pool)
    links.run_once()  # a 500 is not cached: asked again, and found
    assert patient(pool, pid)["fhir_patient_id"] == "p-5"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ("<html><body>Bad gateway</body></html>", "the EHR's answer is not JSON"),
        ('{"resourceType": "OperationOutcome"}', "the EHR answered a OperationOutcome to a Patient search"),
        (
            '{"resourceType": "Bundle", "type": "searchset",'
            ' "entry": [{"resource": {"resourceType": "Observation"}}]}',
            "a Patient search matched a Observation",
        ),
        ("[1, 2, 3]", "the EHR's answer is not a JSON object"),
        (
            '{"resourceType": "Bundle", "type": "searchset", "entry": "many"}',
            "the search Bundle's entry is not a list",
        ),
    ],
)
def test_garbage_answers_are_errors_never_links(
    pool: ConnectionPool, ehr: FhirTestServer, body: str, detail: str
) -> None:
    pid = register(pool, "MRN-6")
    ehr.inject({"action": "garbage", "body": body, "match": "/fhir/Patient"})
    linker(pool, ehr).run_once()
    row = patient(pool, pid)
    assert (row["ehr_link_status"], row["fhir_patient_id"]) == ("error", None)
    assert row["ehr_link_detail"].startswith("the EHR's answer was unusable: " + detail)


def test_a_server_ignoring_the_identifier_links_nobody(pool: ConnectionPool, ehr: FhirTestServer) -> None:
    """An EHR answering every Patient it holds: only a Patient carrying the MRN could link."""
    pid = register(pool, "MRN-4")
    unrelated = ehr_patient("other-1", "MRN-999")
    body = '{"resourceType": "Bundle", "type": "searchset", "total": 1, "entry": [{"resource": %s}]}'
    ehr.inject({"action": "garbage", "body": body % json.dumps(unrelated), "match": "/fhir/Patient"})
    linker(pool, ehr).run_once()
    assert patient(pool, pid)["ehr_link_status"] == "not_found"


def test_lookups_are_cached_per_run(pool: ConnectionPool, ehr: FhirTestServer) -> None:
    ehr.load_patients([ehr_patient("c-1", "MRN-C")])
    links = linker(pool, ehr)
    first = register(pool, "MRN-C")
    links.run_once()
    before = ehr.stats()["patient_searches"]
    # the same MRN in another clinic: answered from the run's cache
    with pool.connection() as conn, conn.transaction():
        roster.create_clinic(conn, "north", "North")
        second = roster.create_patient(
            conn, clinic_id="north", mrn="MRN-C", display_name="Ada", fhir_patient_id=None
        )
    links.run_once()
    assert ehr.stats()["patient_searches"] == before
    assert links.stats.cache_hits == 1
    assert patient(pool, first)["fhir_patient_id"] == patient(pool, second["id"])["fhir_patient_id"] == "c-1"


def test_mrn_with_search_separators_is_escaped(pool: ConnectionPool, ehr: FhirTestServer) -> None:
    pid = register(pool, "A|1,2$3\\4")
    ehr.load_patients([ehr_patient("esc-1", "A|1,2$3\\4"), ehr_patient("esc-2", "A")])
    linker(pool, ehr).run_once()
    assert patient(pool, pid)["fhir_patient_id"] == "esc-1"


def test_without_identifier_system_nothing_is_asked(pool: ConnectionPool, ehr: FhirTestServer) -> None:
    register(pool, "MRN-1")
    links = Linker(pool, reader(ehr), identifier_system=None, retry_s=60)
    assert not links.enabled
    assert links.run_once() == 0
    assert ehr.stats()["patient_searches"] == 0

"""Reading from the EHR (fhir_export.reads) and what a Patient search means
(fhir_export.patients), against the real local FHIR server and hostile answers: oversized, paged
off the EHR's host, wrong resources; names with control characters and markup; MRN escaping."""

from __future__ import annotations

import json

import pytest

from fhir_export.auth import NoAuth
from fhir_export.client import build_http_client
from fhir_export.errors import ReadError
from fhir_export.patients import clean_text, display_name, identifier_param, lookup_result, patient_of
from fhir_export.reads import FhirReader
from tests.support.fhir_test_server import Ehr

SYSTEM = "urn:mrn"


def reader(ehr: Ehr, **options: int) -> FhirReader:
    return FhirReader(build_http_client(timeout_s=10), ehr.base_url, NoAuth(), **options)


def patient(fhir_id: str, mrn: str | None = "MRN-1", **extra: object) -> dict[str, object]:
    resource: dict[str, object] = {"resourceType": "Patient", "id": fhir_id, **extra}
    if mrn is not None:
        resource["identifier"] = [{"system": SYSTEM, "value": mrn}]
    return resource


def test_search_pages_are_followed_and_bounded(ehr: Ehr) -> None:
    ehr.server.load_patients([patient(f"p-{n}", "MRN-9") for n in range(25)])
    pages = list(reader(ehr).search("Patient", {"identifier": f"{SYSTEM}|MRN-9", "_count": "10"}))
    assert [len(p.resources) for p in pages] == [10, 10, 5]
    assert pages[0].total == 25
    with pytest.raises(ReadError, match="more than 2 pages"):
        list(reader(ehr, max_pages=2).search("Patient", {"identifier": f"{SYSTEM}|MRN-9", "_count": "10"}))


def test_an_answer_larger_than_the_bound_is_refused(ehr: Ehr) -> None:
    ehr.server.load_patients([patient("big", name=[{"text": "x" * 5000}])])
    assert reader(ehr, max_bytes=2000).read("Patient", ehr.patient_id)["id"] == ehr.patient_id
    with pytest.raises(ReadError, match="larger than 2000 bytes"):
        reader(ehr, max_bytes=2000).read("Patient", "big")


def test_a_next_link_to_another_host_is_not_followed(ehr: Ehr) -> None:
    elsewhere = {"relation": "next", "url": "https://attacker.example/fhir/Patient?page=2"}
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [], "link": [elsewhere]}
    ehr.server.inject({"action": "garbage", "body": json.dumps(bundle), "match": "/fhir/Patient"})
    with pytest.raises(ReadError, match="leaves the EHR's base URL"):
        list(reader(ehr).search("Patient", {"identifier": f"{SYSTEM}|MRN-1"}))


@pytest.mark.parametrize(
    ("status", "transient"), [(500, True), (503, True), (429, True), (400, False), (404, False)]
)
def test_errors_say_whether_to_ask_again(ehr: Ehr, status: int, transient: bool) -> None:
    ehr.server.inject({"action": "status", "status": status, "match": "/fhir/Patient"})
    with pytest.raises(ReadError) as caught:
        reader(ehr).search_page("Patient", {"identifier": f"{SYSTEM}|MRN-1"})
    assert (caught.value.status, caught.value.transient) == (status, transient)


def test_an_unreachable_ehr_is_transient() -> None:
    lost = FhirReader(
        build_http_client(timeout_s=2, connect_timeout_s=1), "http://127.0.0.1:9/fhir", NoAuth()
    )
    with pytest.raises(ReadError) as caught:
        lost.read("Group", "g")
    assert caught.value.transient


def test_read_of_a_different_resource_type_is_refused(ehr: Ehr) -> None:
    ehr.server.inject({"action": "garbage", "body": json.dumps(patient("x")), "match": "/fhir/Group"})
    with pytest.raises(ReadError, match="answered a Patient for Group/g"):
        reader(ehr).read("Group", "g")


# ------------------------------------------------------------------------------- pure


def test_lookup_decisions() -> None:
    one = [patient("a")]
    assert lookup_result(one, SYSTEM, "MRN-1").fhir_patient_id == "a"
    assert lookup_result([patient("a"), patient("b")], SYSTEM, "MRN-1").status == "ambiguous"
    assert lookup_result(one, SYSTEM, "MRN-1", total=3).status == "ambiguous"
    assert lookup_result([patient("a", "MRN-2")], SYSTEM, "MRN-1").status == "not_found"
    assert lookup_result([patient("a", active=False)], SYSTEM, "MRN-1").status == "not_found"
    assert lookup_result([patient("a" * 65)], SYSTEM, "MRN-1").status == "error"
    assert lookup_result([patient("a"), patient("a")], SYSTEM, "MRN-1").status == "linked"  # one id


def test_mrn_search_values_are_escaped() -> None:
    assert identifier_param("urn:x", "A|1,2$3\\4") == "urn:x|A\\|1\\,2\\$3\\\\4"


def test_names_are_one_line_of_text() -> None:
    official = {"use": "official", "given": ["Ann", "B"], "family": "Lee"}
    assert display_name({"name": [{"use": "old", "text": "Old"}, official]}) == "Ann B Lee"
    assert display_name({"name": [{"text": "<b>Bo</b>\u202e\u0007\n  Smith"}]}) == "<b>Bo</b> Smith"
    assert display_name({"name": [{"text": "   "}]}) is None
    assert display_name({"name": "nope"}) is None
    assert display_name({}) is None
    assert len(clean_text("x" * 1000, 200)) == 200


def test_patient_of_takes_a_single_mrn() -> None:
    assert patient_of(patient("a"), SYSTEM).mrn == "MRN-1"
    two = patient("a")
    two["identifier"] = [{"system": SYSTEM, "value": "M1"}, {"system": SYSTEM, "value": "M2"}]
    assert patient_of(two, SYSTEM).mrn is None
    assert patient_of(patient("a", "M" * 65), SYSTEM).mrn is None
    with pytest.raises(ValueError, match="not a Patient"):
        patient_of({"resourceType": "Group", "id": "a"}, SYSTEM)
    with pytest.raises(ValueError, match="valid id"):
        patient_of({"resourceType": "Patient", "id": "a b"}, SYSTEM)

"""STOW-RS to a real PACS (Orthanc with its DICOMweb plugin), read back through QIDO-RS, WADO-RS and
Orthanc's own parse; and the answers Orthanc cannot be made to give (400, 409, 5xx, 429, slow, down)
from a scripted local HTTP server."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from io import BytesIO

import httpx
import pydicom
import pytest

from dicom_export import PacsUnavailable, RefusedByPacs, build_object
from dicom_export.stow import Stored, StowClient, parse_retry_after
from tests.support.dicom import CLINIC, PATIENT, Reply, ScriptedPacs, failed_sop, make_strip
from tests.support.orthanc import Orthanc
from tests.support.service import free_port


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=httpx.Timeout(10.0, read=2.0)) as client:
        yield client


def test_orthanc_stores_the_object_once_and_gives_it_back(orthanc: Orthanc, http: httpx.Client) -> None:
    strip = make_strip(6, seconds=10, rate=500)
    obj = build_object(strip, PATIENT, CLINIC)
    client = StowClient(http, orthanc.dicomweb_url + "/")

    assert client.store(obj) == Stored(obj.sop_instance_uid, created=True)
    assert client.store(obj).sop_instance_uid == obj.sop_instance_uid  # a retry: accepted again
    assert len(orthanc.instances()) == 1  # ... and stored once

    [found] = orthanc.qido("instances", PatientID="MRN-1001")
    assert found["00080018"]["Value"] == [obj.sop_instance_uid]
    assert found["00080016"]["Value"] == ["1.2.840.10008.5.1.4.1.1.9.1.2"]
    assert found["0020000D"]["Value"] == [obj.study_instance_uid]
    assert found["00080060"]["Value"] == ["ECG"]
    [study] = orthanc.qido("studies", PatientID="MRN-1001")
    assert study["00080020"]["Value"] == ["20261201"]

    retrieved = orthanc.wado(obj.study_instance_uid, obj.series_instance_uid, obj.sop_instance_uid)
    back = pydicom.dcmread(BytesIO(retrieved))
    assert (
        back.WaveformSequence[0].WaveformData
        == pydicom.dcmread(BytesIO(obj.data)).WaveformSequence[0].WaveformData
    )
    assert back.AcquisitionDateTime == "20261201090000.000000+0100"

    [orthanc_id] = orthanc.instances()
    tags = orthanc.parse(orthanc_id)
    assert (tags["PatientID"], tags["Modality"], tags["SOPInstanceUID"]) == (
        "MRN-1001",
        "ECG",
        obj.sop_instance_uid,
    )
    assert tags["PatientName"] == "Doe^Jane"


def test_a_patients_strips_of_one_day_share_a_study(orthanc: Orthanc, http: httpx.Client) -> None:
    from datetime import UTC, datetime

    client = StowClient(http, orthanc.dicomweb_url)
    morning = make_strip(1, seconds=5, measured_at=datetime(2026, 12, 1, 7, 0, tzinfo=UTC))
    evening = make_strip(12, seconds=5, measured_at=datetime(2026, 12, 1, 19, 0, tzinfo=UTC))
    next_day = make_strip(1, seconds=5, measured_at=datetime(2026, 12, 2, 7, 0, tzinfo=UTC))
    for strip in (morning, evening, next_day):
        client.store(build_object(strip, PATIENT, CLINIC))
    studies = orthanc.qido("studies", PatientID="MRN-1001")
    assert sorted(s["00080020"]["Value"][0] for s in studies) == ["20261201", "20261202"]
    [first_day] = [s for s in studies if s["00080020"]["Value"] == ["20261201"]]
    series = orthanc.qido(f"studies/{first_day['0020000D']['Value'][0]}/series")
    assert len(series) == 2


def test_orthanc_refuses_what_is_not_dicom(orthanc: Orthanc, http: httpx.Client) -> None:
    obj = build_object(make_strip(1, seconds=1), PATIENT, CLINIC)
    broken = type(obj)(obj.sop_class_uid, obj.sop_instance_uid, obj.series_instance_uid,
                       obj.study_instance_uid, b"not a DICOM file" * 10)  # fmt: skip
    with pytest.raises(RefusedByPacs) as refused:
        StowClient(http, orthanc.dicomweb_url).store(broken)
    assert refused.value.status == 400
    assert orthanc.instances() == []


def test_the_request_is_multipart_related_application_dicom(http: httpx.Client) -> None:
    obj = build_object(make_strip(1, seconds=1), PATIENT, CLINIC)
    with ScriptedPacs([]) as pacs:
        assert StowClient(http, pacs.url).store(obj).created
        [(path, headers, body)] = pacs.requests
    assert path == "/dicom-web/studies"
    content_type = headers["content-type"]
    assert content_type.startswith('multipart/related; type="application/dicom"; boundary=')
    boundary = content_type.rsplit("=", 1)[1]
    assert headers["accept"] == "application/dicom+json"
    head = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    assert body == head + obj.data + f"\r\n--{boundary}--\r\n".encode()


def test_credentials_in_the_url_are_sent_as_basic_authentication(http: httpx.Client) -> None:
    obj = build_object(make_strip(1, seconds=1), PATIENT, CLINIC)
    with ScriptedPacs([]) as pacs:
        StowClient(http, pacs.url.replace("http://", "http://rpm:s3cret@")).store(obj)
        [(_, headers, _)] = pacs.requests
    assert headers["authorization"] == "Basic " + base64.b64encode(b"rpm:s3cret").decode()


def test_409_and_a_duplicate_failure_are_already_stored(http: httpx.Client) -> None:
    obj = build_object(make_strip(1, seconds=1), PATIENT, CLINIC)
    with ScriptedPacs([Reply(409), Reply(202, failed_sop(obj.sop_instance_uid, 0x0111))]) as pacs:
        client = StowClient(http, pacs.url)
        assert client.store(obj) == Stored(obj.sop_instance_uid, created=False)
        assert client.store(obj) == Stored(obj.sop_instance_uid, created=False)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (
            Reply(400, b'{"error": "bad multipart"}'),
            'HTTP 400: PACS refused the instance: {"error": "bad multipart"}',
        ),
        (Reply(413), "HTTP 413: PACS refused the instance: (no body)"),
        (Reply(202, failed_sop("{uid}", 0xA900)), "status 0xA900"),
        (Reply(200, failed_sop("{uid}", 0xC000)), "status 0xC000"),
    ],
)
def test_refusals_for_the_content_say_why(reply: Reply, reason: str, http: httpx.Client) -> None:
    obj = build_object(make_strip(1, seconds=1), PATIENT, CLINIC)
    reply.body = reply.body.replace(b"{uid}", obj.sop_instance_uid.encode())
    with ScriptedPacs([reply]) as pacs, pytest.raises(RefusedByPacs) as refused:
        StowClient(http, pacs.url).store(obj)
    assert reason in str(refused.value)


@pytest.mark.parametrize(
    ("reply", "retry_after"),
    [
        (Reply(503, b"maintenance", {"Retry-After": "120"}), 120.0),
        (Reply(500), None),
        (Reply(429, headers={"Retry-After": "7"}), 7.0),
        (Reply(404, b"no such route"), None),  # a wrong RPM_DICOMWEB_URL: kept until it is fixed
        (Reply(401), None),
        (Reply(202, failed_sop("{uid}", 0xA700)), None),  # out of resources
        (Reply(200, b"not json at all", {}), "stored"),
    ],
)
def test_transient_answers_leave_the_row_for_later(reply: Reply, retry_after: float | None | str,
                                                   http: httpx.Client) -> None:  # fmt: skip
    obj = build_object(make_strip(1, seconds=1), PATIENT, CLINIC)
    reply.body = reply.body.replace(b"{uid}", obj.sop_instance_uid.encode())
    with ScriptedPacs([reply]) as pacs:
        client = StowClient(http, pacs.url)
        if retry_after == "stored":  # a 200 whose body cannot be read still means stored
            assert client.store(obj).created
            return
        with pytest.raises(PacsUnavailable) as later:
            client.store(obj)
    assert later.value.retry_after == retry_after


def test_a_slow_pacs_is_a_timeout_to_retry(http: httpx.Client) -> None:
    obj = build_object(make_strip(1, seconds=1), PATIENT, CLINIC)
    with ScriptedPacs([Reply(200, delay_s=4.0)]) as pacs, pytest.raises(PacsUnavailable, match="in time"):
        StowClient(http, pacs.url).store(obj)


def test_a_pacs_that_is_down_is_unreachable(http: httpx.Client) -> None:
    obj = build_object(make_strip(1, seconds=1), PATIENT, CLINIC)
    with pytest.raises(PacsUnavailable, match="unreachable"):
        StowClient(http, f"http://127.0.0.1:{free_port()}/dicom-web").store(obj)


@pytest.mark.parametrize(
    ("body", "outcome"),
    [
        (b"[]", "stored"),
        (b"{}", "stored"),
        (json.dumps({"00081198": {"vr": "SQ", "Value": [{}]}}).encode(), "refused"),
        (json.dumps({"00081198": {"vr": "SQ", "Value": ["x", 3]}}).encode(), "stored"),
        (
            json.dumps({"00081198": {"vr": "SQ", "Value": [{"00081197": {"Value": [True]}}]}}).encode(),
            "refused",
        ),
        (json.dumps({"00081198": "nonsense"}).encode(), "stored"),
        (b"\xff\xfe" * 100, "stored"),
    ],
)
def test_hostile_answers_do_not_break_the_client(body: bytes, outcome: str, http: httpx.Client) -> None:
    obj = build_object(make_strip(1, seconds=1), PATIENT, CLINIC)
    with ScriptedPacs([Reply(200, body)]) as pacs:
        client = StowClient(http, pacs.url)
        if outcome == "stored":
            assert client.store(obj).created
        else:
            with pytest.raises(RefusedByPacs):
                client.store(obj)


def test_an_endless_answer_is_read_only_so_far(http: httpx.Client) -> None:
    obj = build_object(make_strip(1, seconds=1), PATIENT, CLINIC)
    with ScriptedPacs(
        [Reply(200, b"[" + b" " * (8 * 1024 * 1024)), Reply(503, b"x" * (8 * 1024 * 1024))]
    ) as pacs:
        client = StowClient(http, pacs.url)
        assert client.store(obj).created
        with pytest.raises(PacsUnavailable) as later:
            client.store(obj)
    assert len(later.value.reason) < 1000


def test_retry_after_as_seconds_or_a_date() -> None:
    assert parse_retry_after("30", 0.0) == 30.0
    assert parse_retry_after("99999999", 0.0) == 3600.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0) == 10.0
    assert parse_retry_after("soon", 0.0) is None and parse_retry_after(None, 0.0) is None

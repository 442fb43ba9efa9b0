"""DIMSE C-STORE to a real PACS (Orthanc's Storage SCP), read back through QIDO-RS; the statuses
Orthanc cannot be made to give from a scripted pynetdicom Storage SCP; and the AE address rules."""

from __future__ import annotations

import pytest

from dicom_export import PacsUnavailable, RefusedByPacs, build_object
from dicom_export.address import AeAddress, check_ae_title
from dicom_export.cstore import CStoreClient
from dicom_export.stow import Stored
from tests.support.dicom import CLINIC, PATIENT, ScriptedScp, make_strip
from tests.support.orthanc import Orthanc
from tests.support.service import free_port


def test_orthanc_stores_what_c_store_sends_once(orthanc: Orthanc) -> None:
    client = CStoreClient(AeAddress.parse(orthanc.ae_address), timeout_s=10)
    one = build_object(make_strip(1, seconds=30, rate=300), PATIENT, CLINIC)
    twelve = build_object(make_strip(12, seconds=10, device_id="ecg-12"), PATIENT, CLINIC)
    assert client.store(one) == Stored(one.sop_instance_uid, created=True)
    assert client.store(twelve).sop_instance_uid == twelve.sop_instance_uid
    client.store(one)  # a retry: accepted, stored once
    assert len(orthanc.instances()) == 2
    found = orthanc.qido("instances", PatientID="MRN-1001")
    assert sorted(f["00080016"]["Value"][0] for f in found) == [
        "1.2.840.10008.5.1.4.1.1.9.1.1",
        "1.2.840.10008.5.1.4.1.1.9.1.2",
    ]


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (0x0000, Stored("{uid}", created=True)),
        (0xB000, Stored("{uid}", created=True, warning=0xB000)),  # coercion of data elements
        (0x0111, Stored("{uid}", created=False)),  # duplicate SOP instance: ours, from before
        (0xA900, RefusedByPacs("PACS refused the instance (status 0xA900)")),
        (0xC123, RefusedByPacs("PACS refused the instance (status 0xC123)")),
        (0x0122, RefusedByPacs("PACS refused the instance (status 0x0122)")),
        (0xA702, PacsUnavailable("PACS could not store it now (status 0xA702)")),
        (0x0124, PacsUnavailable("PACS could not store it now (status 0x0124)")),
    ],
)
def test_each_status_says_what_next(status: int, outcome: Stored | Exception) -> None:
    obj = build_object(make_strip(2, seconds=2), PATIENT, CLINIC)
    with ScriptedScp([status]) as scp:
        client = CStoreClient(AeAddress.parse(scp.address), timeout_s=10)
        if isinstance(outcome, Stored):
            expected = Stored(obj.sop_instance_uid, outcome.created, outcome.warning)
            assert client.store(obj) == expected
        else:
            with pytest.raises(type(outcome)) as raised:
                client.store(obj)
            assert str(raised.value) == str(outcome)
        assert scp.received == [obj.sop_instance_uid]


def test_an_scp_that_refuses_the_association_or_is_down_is_unavailable() -> None:
    obj = build_object(make_strip(1, seconds=1), PATIENT, CLINIC)
    with ScriptedScp([]) as scp:
        wrong = CStoreClient(AeAddress.parse(f"OTHER@127.0.0.1:{scp.port}"), timeout_s=10)
        with pytest.raises(PacsUnavailable, match=r"association with OTHER@127\.0\.0\.1:\d+ rejected"):
            wrong.store(obj)
        assert scp.received == []
    down = CStoreClient(AeAddress.parse(f"PACS@127.0.0.1:{free_port()}"), timeout_s=5)
    with pytest.raises(PacsUnavailable, match="association with PACS@127.0.0.1"):
        down.store(obj)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("ORTHANC@127.0.0.1:4242", AeAddress("ORTHANC", "127.0.0.1", 4242)),
        (" MY PACS @pacs.example.org:104", AeAddress("MY PACS", "pacs.example.org", 104)),
        ("A@[::1]:11112", AeAddress("A", "::1", 11112)),
    ],
)
def test_ae_addresses(text: str, parsed: AeAddress) -> None:
    assert AeAddress.parse(text) == parsed


@pytest.mark.parametrize(
    "text",
    ["", "ORTHANC", "@h:104", "   @h:104", "A@h:0", "A@h:65536", "A@h:port", "A" * 17 + "@h:104",
     "A\\B@h:104", "A\x00@h:104", "A@h h:104", "A@h:104/x", "A@@h:104"],
)  # fmt: skip
def test_malformed_ae_addresses_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="AETITLE@host:port"):
        AeAddress.parse(text)


def test_ae_titles() -> None:
    assert check_ae_title(" RPMINGEST ") == "RPMINGEST"
    for bad in ("", "   ", "X" * 17, "A\\B", "A\nB"):
        with pytest.raises(ValueError, match="1-16 characters"):
            check_ae_title(bad)

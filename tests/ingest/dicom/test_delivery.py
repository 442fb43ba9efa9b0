"""The DICOM export's delivery through the real outbox (PostgreSQL) to a real PACS (Orthanc), and to
a scripted PACS for the answers Orthanc does not give: each strip stored once, refusals parked with
their reason, an unavailable PACS retried later."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID
from zoneinfo import ZoneInfo

import httpx
import pytest
from psycopg_pool import ConnectionPool

from dicom_export.address import AeAddress
from dicom_export.cstore import CStoreClient
from dicom_export.uids import sop_instance_uid
from ingest.export.destinations import DICOM
from ingest.export.outbox import NewItem, enqueue_items
from tests.support.dicom import Reply, ScriptedPacs, ScriptedScp, failed_sop
from tests.support.dicom_outbox import DEVICE, rows, sender, sender_to, strips_with_rows
from tests.support.mqtt_ingest import BASE
from tests.support.orthanc import Orthanc
from tests.support.service import free_port


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=httpx.Timeout(10.0, read=2.0)) as client:
        yield client


def test_each_strip_reaches_the_pacs_once(pool: ConnectionPool, orthanc: Orthanc, http: httpx.Client) -> None:
    _, strips = strips_with_rows(pool, 3, seconds=10)
    worker = sender(pool, orthanc.dicomweb_url, http)

    assert worker.run_once().claimed == 3
    assert worker.run_once().claimed == 0  # nothing left
    uids = {str(s.id): sop_instance_uid(str(s.id)) for s in strips}
    assert {r["item_ref"]: (r["status"], r["reference"], r["attempts"]) for r in rows(pool)} == {
        ref: ("sent", uid, 0) for ref, uid in uids.items()
    }
    found = orthanc.qido("instances", PatientID="MRN-ECG")
    assert sorted(f["00080018"]["Value"][0] for f in found) == sorted(uids.values())
    # One study per patient and Berlin day (the three minutes may straddle midnight), a series each.
    days = {s.measured_at.astimezone(ZoneInfo("Europe/Berlin")).date() for s in strips}
    assert len(orthanc.qido("studies", PatientID="MRN-ECG")) == len(days)
    assert len(orthanc.qido("series", PatientID="MRN-ECG")) == 3

    # An operator requeues every row: sent again, still stored once.
    with pool.connection() as conn:
        conn.execute("UPDATE outbox SET status = 'pending', sent_at = NULL WHERE destination = 'dicom'")
    assert worker.run_once().claimed == 3
    assert len(orthanc.instances()) == 3
    assert worker.stats.sent == 6 and worker.stats.parked == 0


def test_a_strip_the_iod_cannot_hold_is_parked_and_the_others_go(
    pool: ConnectionPool, orthanc: Orthanc, http: httpx.Client
) -> None:
    patient, _ = strips_with_rows(pool, 1, seconds=5, rate=150)  # General ECG allows 200-1000 Hz
    with pool.connection() as conn, conn.transaction():
        missing = NewItem(UUID(patient), DEVICE, DICOM, "ecg", "7b0c0c1e-0000-5000-8000-00000000dead", BASE)
        enqueue_items(conn, [missing])
    worker = sender(pool, orthanc.dicomweb_url, http)
    worker.run_once()
    by_status = {r["item_ref"]: (r["status"], r["last_error"]) for r in rows(pool)}
    assert by_status["7b0c0c1e-0000-5000-8000-00000000dead"] == (
        "failed", "stored row is unreadable: 'ECG strip 7b0c0c1e-0000-5000-8000-00000000dead is not stored'"
    )  # fmt: skip
    [(status, reason)] = [v for k, v in by_status.items() if not k.endswith("dead")]
    assert status == "failed" and reason.startswith("cannot be a DICOM ECG object: sampling frequency 150 Hz")
    assert orthanc.instances() == []


def test_409_is_done_and_400_is_parked_with_the_reason(pool: ConnectionPool, http: httpx.Client) -> None:
    strips_with_rows(pool, 3, seconds=1)
    replies = [Reply(409), Reply(202, failed_sop(None, 0xA900)), Reply(400, b"Invalid multipart body")]
    with ScriptedPacs(replies) as pacs:
        sender(pool, pacs.url, http).run_once()
    found = rows(pool)
    assert [(r["status"], r["created"]) for r in found] == [
        ("sent", False),
        ("failed", None),
        ("failed", None),
    ]
    assert found[1]["last_error"] == "HTTP 202: PACS refused the instance (status 0xA900)"
    assert found[2]["last_error"] == "HTTP 400: PACS refused the instance: Invalid multipart body"


@pytest.mark.parametrize("fault", ["5xx", "slow", "down"])
def test_an_unavailable_pacs_is_asked_once_and_every_row_waits(
    fault: str, pool: ConnectionPool, http: httpx.Client
) -> None:
    strips_with_rows(pool, 3, seconds=1)
    reply = {"5xx": Reply(503, b"busy", {"Retry-After": "600"}), "slow": Reply(200, delay_s=4.0)}.get(fault)
    with ScriptedPacs([reply] if reply else []) as pacs:
        url = pacs.url if fault != "down" else f"http://127.0.0.1:{free_port()}/dicom-web"
        done = sender(pool, url, http).run_once()
        asked = len(pacs.requests)
    assert done.pacs_unavailable and done.claimed == 3
    assert asked == (0 if fault == "down" else 1)
    found = rows(pool)
    assert [(r["status"], r["attempts"]) for r in found] == [("pending", 1)] * 3
    reason = {"5xx": "HTTP 503: PACS answered HTTP 503: busy", "slow": "did not answer in time",
              "down": "PACS unreachable"}[fault]  # fmt: skip
    assert all(reason in r["last_error"] for r in found)
    assert all(r["due_in_s"] > (590 if fault == "5xx" else 1) for r in found)  # backoff, Retry-After


def test_after_the_outage_the_rows_go_when_due(
    pool: ConnectionPool, orthanc: Orthanc, http: httpx.Client
) -> None:
    strips_with_rows(pool, 2, seconds=1)
    with ScriptedPacs([Reply(500)]) as pacs:
        sender(pool, pacs.url, http).run_once()
    worker = sender(pool, orthanc.dicomweb_url, http)
    assert worker.run_once().claimed == 0  # not due yet
    with pool.connection() as conn:
        conn.execute("UPDATE outbox SET next_attempt_at = now() WHERE destination = 'dicom'")
    assert worker.run_once().claimed == 2
    assert [(r["status"], r["attempts"]) for r in rows(pool)] == [("sent", 1), ("sent", 1)]
    assert len(orthanc.instances()) == 2


def test_other_destinations_rows_are_not_touched(pool: ConnectionPool, http: httpx.Client) -> None:
    patient, strips = strips_with_rows(pool, 1, seconds=1)
    with pool.connection() as conn, conn.transaction():
        enqueue_items(conn, [NewItem(UUID(patient), DEVICE, "fhir", "ecg", str(strips[0].id), BASE)])
    with ScriptedPacs([]) as pacs:
        assert sender(pool, pacs.url, http).run_once().claimed == 1
    with pool.connection() as conn:
        statuses = dict(conn.execute("SELECT destination, status FROM outbox").fetchall())
    assert statuses == {"dicom": "sent", "fhir": "waiting"}


def test_rows_the_reader_cannot_use_are_parked_with_the_reason(
    pool: ConnectionPool, http: httpx.Client
) -> None:
    patient, strips = strips_with_rows(pool, 1, seconds=1, timezone="Mars/Olympus_Mons")
    with pool.connection() as conn, conn.transaction():
        flag = NewItem(UUID(patient), DEVICE, DICOM, "flag", "42", BASE)  # not a strip: not for the PACS
        enqueue_items(conn, [flag])
    with ScriptedPacs([]) as pacs:
        assert sender(pool, pacs.url, http).run_once().claimed == 0
        assert pacs.requests == []
    unreadable = "stored row is unreadable: "
    reasons = {r["item_ref"]: (r["status"], r["last_error"]) for r in rows(pool)}
    assert reasons == {
        str(strips[0].id): ("failed", unreadable + "'No time zone found with key Mars/Olympus_Mons'"),
        "42": ("failed", unreadable + "the DICOM export sends ECG strips, not outbox rows of kind 'flag'"),
    }


def test_c_store_through_the_outbox(pool: ConnectionPool, orthanc: Orthanc) -> None:
    """The same sender over DIMSE C-STORE (RPM_DICOM_AE) to Orthanc's Storage SCP."""
    _, strips = strips_with_rows(pool, 2, seconds=5)
    worker = sender_to(pool, CStoreClient(AeAddress.parse(orthanc.ae_address), timeout_s=10))
    assert worker.run_once().claimed == 2
    assert {r["item_ref"]: (r["status"], r["reference"]) for r in rows(pool)} == {
        str(s.id): ("sent", sop_instance_uid(str(s.id))) for s in strips
    }
    assert len(orthanc.qido("instances", PatientID="MRN-ECG")) == 2


def test_an_scp_down_or_refusing_leaves_the_rows_for_later(pool: ConnectionPool) -> None:
    strips_with_rows(pool, 2, seconds=1)
    with ScriptedScp([]) as scp:
        wrong_title = AeAddress.parse(f"NOTTHEPACS@127.0.0.1:{scp.port}")
        done = sender_to(pool, CStoreClient(wrong_title, timeout_s=10)).run_once()
    assert done.pacs_unavailable and done.claimed == 2
    assert [(r["status"], r["attempts"]) for r in rows(pool)] == [("pending", 1)] * 2
    assert all("rejected" in r["last_error"] for r in rows(pool))

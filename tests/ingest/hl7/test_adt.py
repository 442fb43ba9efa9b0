"""ADT over MLLP into a running service (RPM_HL7_LISTEN): every event, every kind of bad input,
idempotence by MSH-10, hostile clients. Messages come from the tests' own socket client; answers
are read with hl7apy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hl7apy.parser import parse_message

from ingest.hl7.component import EXTRAS_KEY, Hl7Parts
from ingest.settings import Settings
from tests.ingest.hl7.helpers import END, START, MllpClient
from tests.support.export import T0, add_patient, hr
from tests.support.service import RunningService, running_service
from tests.support.waiting import wait_until


@pytest.fixture
def service(settings: Settings) -> Iterator[RunningService]:
    s = settings.model_copy(
        update={
            "mqtt_enabled": False,
            "hl7_listen": "127.0.0.1:0",
            "hl7_max_message_bytes": 64 * 1024,
            "hl7_read_timeout_s": 1.0,
            "hl7_idle_timeout_s": 4.0,
            "hl7_max_connections": 8,
        }
    )
    with running_service(s) as svc:
        yield svc


def port_of(service: RunningService) -> int:
    (component,) = [c for c in service.runtime.components if c.name == "hl7"]
    parts = component.extras[EXTRAS_KEY]
    assert isinstance(parts, Hl7Parts) and parts.listener is not None
    return parts.listener.port


@pytest.fixture
def client(service: RunningService) -> Iterator[MllpClient]:
    c = MllpClient(port_of(service))
    yield c
    c.close()


def adt(event: str, control_id: str, *segments: str, structure: str = "ADT_A01") -> str:
    msh = f"MSH|^~\\&|EPIC|HOSP|RPM|CLINIC|20260301120000||ADT^{event}^{structure}|{control_id}|P|2.5"
    return "\r".join([msh, f"EVN|{event}", *segments]) + "\r"


def ack(text: str) -> tuple[str, str, str]:
    m = parse_message(text)
    err = ""
    if "\rERR|" in text:
        err = m.err.err_3.err_3_1.to_er7()
    return m.msa.msa_1.value, m.msa.msa_2.value, err


def query(service: RunningService, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with service.services.transaction() as conn:
        return conn.execute(sql, params).fetchall()


def test_a01_registers_a04_updates_a08_updates(service: RunningService, client: MllpClient) -> None:
    assert ack(client.send(adt("A01", "C1", "PID|||NEW-1^^^HOSP^MR||O\\F\\Neil^Ann\\S\\Marie"))) == (
        "AA",
        "C1",
        "",
    )
    assert query(service, "SELECT display_name FROM patients WHERE mrn = 'NEW-1'") == [("Ann^Marie O|Neil",)]
    assert ack(client.send(adt("A04", "C2", "PID|||NEW-1||Smith^Ann")))[0] == "AA"
    assert ack(client.send(adt("A08", "C3", "PID|||NEW-1||Jones^Ann")))[0] == "AA"
    assert query(service, "SELECT display_name FROM patients WHERE mrn = 'NEW-1'") == [("Ann Jones",)]
    received = query(service, "SELECT control_id, event FROM hl7_received ORDER BY received_at")
    assert received == [("C1", "A01"), ("C2", "A04"), ("C3", "A08")]


def test_a_repeated_control_id_is_acknowledged_again_and_applied_once(
    service: RunningService, client: MllpClient
) -> None:
    first = adt("A01", "SAME", "PID|||R-1||First^Name")
    assert ack(client.send(first)) == ("AA", "SAME", "")
    assert ack(client.send(adt("A08", "LATER", "PID|||R-1||Second^Name")))[0] == "AA"
    assert ack(client.send(first)) == ("AA", "SAME", "")  # the re-send changes nothing
    assert query(service, "SELECT display_name FROM patients WHERE mrn = 'R-1'") == [("Name Second",)]
    assert len(query(service, "SELECT 1 FROM hl7_received WHERE control_id = 'SAME'")) == 1


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (adt("A08", "U1", "PID|||NOBODY||X^Y"), ("AE", "U1", "204")),  # unknown patient
        (adt("A03", "U2", "PID|||NOBODY"), ("AE", "U2", "204")),
        (adt("A40", "U3", "PID|||NOBODY", "MRG|ALSO-NOBODY", structure="ADT_A39"), ("AE", "U3", "204")),
        (adt("A01", "U4", "PID|||X"), ("AE", "U4", "101")),  # no name
        (adt("A01", "U5"), ("AE", "U5", "100")),  # no PID
        (adt("A02", "U6", "PID|||X||A^B"), ("AR", "U6", "201")),  # unsupported event
        ("MSH|^~\\&|E|F|||20260301||ORU^R01|U7|P|2.6\rPID|||1\r", ("AR", "U7", "200")),  # unsupported type
        ("this is not HL7 at all", ("AR", "", "100")),  # malformed
        ("MSH|^~\\&|E|F|||20260301||ADT^A01|\rPID|||1||A^B\r", ("AR", "", "100")),  # no MSH-10
    ],
)
def test_messages_that_cannot_be_applied(
    service: RunningService, client: MllpClient, message: str, expected: tuple[str, str, str]
) -> None:
    assert ack(client.send(message)) == expected
    # the connection survives and the next message is applied
    assert ack(client.send(adt("A01", "OK", "PID|||FINE||Ok^Fine")))[0] == "AA"
    assert query(service, "SELECT count(*) FROM hl7_received") == [(1,)]


def test_invalid_utf8_is_rejected(service: RunningService, client: MllpClient) -> None:
    client.send_raw(START + b"MSH|^~\\&|E|F|||20260301||ADT^A01|B1|P|2.5\rPID|||1||\xff\xfe^x\r" + END)
    assert ack(client.read_frame()) == ("AR", "B1", "102")


def test_a03_ends_monitoring_and_releases_the_devices(service: RunningService, client: MllpClient) -> None:
    patient = add_patient(service.services.pool, mrn="DIS-1", device_id="CUFF-1")
    ended = T0.strftime("%Y%m%d%H%M%S+0000")
    answer = client.send(adt("A03", "D1", "PID|||DIS-1").replace("EVN|A03", f"EVN|A03|{ended}"))
    assert ack(answer)[0] == "AA"
    rows = query(
        service, "SELECT patient_id, since FROM device_assignments WHERE device_id = 'CUFF-1' ORDER BY since"
    )
    assert [r[0] for r in rows] == [patient, None] and rows[1][1] == T0
    assert query(service, "SELECT id FROM patients WHERE mrn = 'DIS-1'") == [(patient,)]  # the patient stays
    episodes = query(service, "SELECT ended_at FROM monitoring_episodes WHERE patient_id = %s", patient)
    assert episodes and all(e[0] is not None for e in episodes)
    assert ack(client.send(adt("A03", "D1", "PID|||DIS-1")))[0] == "AA"  # re-sent: applied once
    assert len(query(service, "SELECT 1 FROM device_assignments WHERE device_id = 'CUFF-1'")) == 2


def test_a40_moves_readings_devices_alerts_and_exports_to_the_survivor(
    service: RunningService, client: MllpClient
) -> None:
    survivor = add_patient(service.services.pool, mrn="KEEP", device_id="DEV-KEEP")
    merged = add_patient(service.services.pool, mrn="GONE", device_id="DEV-GONE")
    token = service.token("admin")
    with service.client(token) as http:
        low_spo2 = {**hr(minute=2), "metric": "spo2", "unit": "%", "value": 80}
        for device, values in (("DEV-GONE", [hr(72, minute=1), low_spo2]), ("DEV-KEEP", [hr(70, minute=3)])):
            r = http.post("/v1/readings", json={"device_id": device, "readings": values})
            assert r.status_code == 200, r.text
    wait_until(
        lambda: query(service, "SELECT count(*) FROM alerts WHERE patient_id = %s", merged) != [(0,)],
        20,
        "an alert",
    )
    answer = client.send(
        adt("A40", "M1", "PID|||KEEP^^^HOSP^MR||Keep^Kay", "MRG|GONE^^^HOSP", structure="ADT_A39")
    )
    assert ack(answer) == ("AA", "M1", "")
    for table in ("readings", "device_assignments", "alerts", "outbox"):
        assert query(service, f"SELECT count(*) FROM {table} WHERE patient_id = %s", merged) == [(0,)], table
    assert query(service, "SELECT count(*) FROM readings WHERE patient_id = %s", survivor) == [(3,)]
    assert query(service, "SELECT merged_into FROM patients WHERE id = %s", merged) == [(survivor,)]
    with service.client(token) as http:  # the merged record is no longer listed
        listed = http.get("/v1/patients").json()
    assert [p["mrn"] for p in (listed["patients"] if isinstance(listed, dict) else listed)] == ["KEEP"]
    (audit,) = query(service, "SELECT survivor_id, merged_id, merged_mrn, source, moved FROM patient_merges")
    assert audit[:4] == (survivor, merged, "GONE", "hl7:EPIC|HOSP|M1")
    assert audit[4]["readings"] == 2 and audit[4]["alerts"] >= 1 and audit[4]["device_assignments"] == 1
    assert (
        ack(client.send(answer and adt("A40", "M1", "PID|||KEEP", "MRG|GONE", structure="ADT_A39")))[0]
        == "AA"
    )
    assert len(query(service, "SELECT 1 FROM patient_merges")) == 1  # applied once


def test_a_thousand_garbage_frames_then_a_good_message(service: RunningService, client: MllpClient) -> None:
    garbage = [b"", b"\x00\x01\x02", b"MSH", b"MSH|", b"\xff" * 50, b"|||^^^~~~", b"MSH|^~\\&" + b"|" * 40]
    for n in range(1000):
        client.send_raw(
            START + garbage[n % len(garbage)] + bytes([n % 256 if n % 256 not in (11, 28) else 0]) + END
        )
    answers = [client.read_frame() for _ in range(1000)]
    assert ack(client.send(adt("A01", "AFTER", "PID|||G-1||Good^Msg")))[0] == "AA"
    assert {ack(a)[0] for a in answers} == {"AR"}
    other = MllpClient(port_of(service))  # and a new connection is served too
    assert ack(other.send(adt("A08", "AFTER-2", "PID|||G-1||Good^Again")))[0] == "AA"
    other.close()


def test_oversized_and_cut_short_messages_are_answered(service: RunningService, client: MllpClient) -> None:
    big = adt("A01", "BIG", "PID|||B||" + "x" * 70_000)
    client.send_raw(START + big.encode() + END)
    assert ack(client.read_frame())[0] == "AR"
    client.send_raw(
        START
        + b"MSH|^~\\&|E|F|||1||ADT^A01|CUT|P|2.5\rPID"
        + START
        + adt("A01", "NEXT", "PID|||N||A^B").encode()
        + END
    )
    assert ack(client.read_frame())[:2] == ("AR", "CUT")
    assert ack(client.read_frame())[:2] == ("AA", "NEXT")


def test_slow_and_silent_clients_are_disconnected(service: RunningService) -> None:
    slow = MllpClient(port_of(service))
    slow.send_raw(START + b"MSH|^~\\&|E|F")  # starts a message, never finishes it (read timeout 1 s)
    silent = MllpClient(port_of(service))  # says nothing (idle timeout 4 s)
    wait_until(slow.closed_by_peer, 10, "the slow client to be cut")
    wait_until(silent.closed_by_peer, 10, "the silent client to be cut")
    fresh = MllpClient(port_of(service))
    assert ack(fresh.send(adt("A01", "F1", "PID|||F||A^B")))[0] == "AA"
    for c in (slow, silent, fresh):
        c.close()


def test_connections_beyond_the_limit_are_closed(service: RunningService) -> None:
    held = [MllpClient(port_of(service)) for _ in range(8)]
    assert ack(held[0].send(adt("A01", "L0", "PID|||L||A^B")))[0] == "AA"
    extra = MllpClient(port_of(service))
    wait_until(extra.closed_by_peer, 10, "the extra connection to be closed")
    for c in held:
        c.close()
    extra.close()


def test_the_received_log_forgets_after_its_keeping_time(service: RunningService, client: MllpClient) -> None:
    assert ack(client.send(adt("A01", "OLD-1", "PID|||K-1||Kept^Once")))[0] == "AA"
    assert ack(client.send(adt("A01", "NEW-1", "PID|||K-2||Kept^Twice")))[0] == "AA"
    with service.services.transaction() as conn:
        conn.execute(
            "UPDATE hl7_received SET received_at = now() - interval '91 days' WHERE control_id = 'OLD-1'"
        )
    (component,) = [c for c in service.runtime.components if c.name == "hl7"]
    parts = component.extras[EXTRAS_KEY]
    assert isinstance(parts, Hl7Parts) and parts.listener is not None
    assert parts.listener.handler.forget_old(90) == 1
    assert query(service, "SELECT control_id FROM hl7_received") == [("NEW-1",)]

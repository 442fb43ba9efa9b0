"""The ORU^R01 sender against a receiver that is not ours (tests/support/mllp_receiver.py: hl7apy
parses and validates everything it receives): every answer, lost ACKs, a receiver away, order."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from psycopg_pool import ConnectionPool

from ingest.export.destinations import FHIR, HL7
from tests.ingest.hl7.helpers import hl7_rows, make_due, make_sender, run_once
from tests.support.export import T0, Home, add_patient, bp, hr, make_home
from tests.support.mllp_receiver import MllpReceiver, ack_text


@pytest.fixture
def home(pool: ConnectionPool) -> Home:
    return make_home(pool, fhir_patient_id=None, panel_wait_s=0, destinations=(FHIR, HL7))


@pytest.fixture
def receiver() -> Iterator[MllpReceiver]:
    with MllpReceiver() as r:
        yield r


def test_readings_and_a_panel_arrive_valid_once_each(
    pool: ConnectionPool, home: Home, receiver: MllpReceiver
) -> None:
    home.ingest([hr(72, minute=1), *bp(128, 84, 99, minute=2), hr(75, minute=3)])
    assert run_once(make_sender(pool, receiver)) == (3, False)
    assert receiver.invalid == []
    rows = hl7_rows(pool)
    assert [r["status"] for r in rows] == ["sent"] * 3
    assert [r["fhir_reference"] for r in rows] == [m.control_id for m in receiver.received]
    assert sorted(receiver.accepted.values()) == [1, 1, 1]
    panel = next(m.message for m in receiver.received if "150020" in m.text)
    order = panel.oru_r01_patient_result.oru_r01_order_observation
    assert [o.obx.obx_5.to_er7() for o in order.oru_r01_observation] == ["128", "84", "99"]
    pid = panel.oru_r01_patient_result.oru_r01_patient.pid
    assert pid.pid_3.to_er7() == "MRN-1^^^HOSP^MR"
    assert order.oru_r01_observation[0].obx.obx_18.to_er7() == "F0F1F2F3F4F5^RPM-INGEST"
    # the FHIR rows are the FHIR export's: untouched by the HL7 sender
    fhir = home.rows(destination="fhir")
    assert len(fhir) == 3 and {r["status"] for r in fhir} != {"sent"}


def test_a_reading_in_another_unit_goes_out_converted(
    pool: ConnectionPool, home: Home, receiver: MllpReceiver
) -> None:
    home.ingest(
        [{"metric": "body_temperature", "value": 100.4, "unit": "[degF]", "measured_at": hr()["measured_at"]}]
    )
    run_once(make_sender(pool, receiver))
    (got,) = receiver.received
    obx = got.message.oru_r01_patient_result.oru_r01_order_observation.oru_r01_observation[0].obx
    assert (obx.obx_5.to_er7(), obx.obx_6.to_er7()) == ("38", "Cel^Cel^UCUM")
    assert obx.obx_3.to_er7() == "150364^MDC_TEMP_BODY^MDC^8310-5^Body temperature^LN"


def test_lost_ack_resends_the_same_control_id_counted_once(
    pool: ConnectionPool, home: Home, receiver: MllpReceiver
) -> None:
    receiver.script = lambda control_id, attempt: "drop" if attempt == 1 else "AA"
    home.ingest([hr(72)])
    sender = make_sender(pool, receiver)
    assert run_once(sender) == (1, True)
    (row,) = hl7_rows(pool)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert "connection lost before the ACK" in row["last_error"]
    make_due(pool)
    assert run_once(sender) == (1, False)
    first, second = receiver.received
    assert first.control_id == second.control_id == hl7_rows(pool)[0]["fhir_reference"]
    assert first.text.split("\r")[1:] == second.text.split("\r")[1:]  # the same message (MSH-7 aside)
    assert receiver.accepted == {first.control_id: 1}
    assert hl7_rows(pool)[0]["status"] == "sent"


def test_no_ack_in_time_is_retried(pool: ConnectionPool, home: Home, receiver: MllpReceiver) -> None:
    receiver.script = lambda control_id, attempt: "silent" if attempt == 1 else "AA"
    home.ingest([hr(72)])
    sender = make_sender(pool, receiver, ack_timeout_s=0.5)
    assert run_once(sender) == (1, True)
    assert "no ACK within 0.5 s" in hl7_rows(pool)[0]["last_error"]
    make_due(pool)
    run_once(sender)
    assert hl7_rows(pool)[0]["status"] == "sent" and len(receiver.accepted) == 1


def test_ae_then_aa(pool: ConnectionPool, home: Home, receiver: MllpReceiver) -> None:
    receiver.script = lambda control_id, attempt: "AE" if attempt == 1 else "AA"
    home.ingest([hr(72)])
    sender = make_sender(pool, receiver)
    assert run_once(sender) == (1, False)
    (row,) = hl7_rows(pool)
    assert (row["status"], row["attempts"], row["last_error"]) == (
        "pending",
        1,
        "AE: database busy, try again",
    )
    make_due(pool)
    run_once(sender)
    assert hl7_rows(pool)[0]["status"] == "sent"
    assert [m.answer for m in receiver.received] == ["AE", "AA"]


def test_ar_is_parked_with_the_receivers_text(
    pool: ConnectionPool, home: Home, receiver: MllpReceiver
) -> None:
    receiver.script = lambda control_id, attempt: "AR"
    home.ingest([hr(72), hr(73, minute=1)])
    run_once(make_sender(pool, receiver))
    assert [(r["status"], r["last_error"]) for r in hl7_rows(pool)] == [
        ("failed", "AR: Unknown patient ^ MRN|x")
    ] * 2


def test_receiver_down_then_back(pool: ConnectionPool, home: Home, receiver: MllpReceiver) -> None:
    home.ingest([hr(70 + i, minute=i) for i in range(5)])
    sender = make_sender(pool, receiver)
    receiver.down()
    assert run_once(sender) == (5, True)
    rows = hl7_rows(pool)
    assert [r["status"] for r in rows] == ["pending"] * 5
    assert "cannot connect" in rows[0]["last_error"] and [r["attempts"] for r in rows] == [1, 0, 0, 0, 0]
    receiver.up()
    make_due(pool)
    while run_once(sender)[0]:
        make_due(pool)
    assert [r["status"] for r in hl7_rows(pool)] == ["sent"] * 5
    assert sorted(receiver.accepted.values()) == [1] * 5


def test_each_patients_results_keep_their_order(
    pool: ConnectionPool, home: Home, receiver: MllpReceiver
) -> None:
    other = add_patient(pool, mrn="MRN-2", device_id="OTHER-DEVICE")
    assert other
    home.ingest([hr(60, minute=1)])
    home.ingest([hr(61, minute=2)], device_id="OTHER-DEVICE")
    home.ingest([hr(62, minute=3)])
    first_of_patient_1 = None

    def script(control_id: str, attempt: int) -> str:
        nonlocal first_of_patient_1
        first_of_patient_1 = first_of_patient_1 or control_id
        return "AE" if control_id == first_of_patient_1 and attempt == 1 else "AA"

    receiver.script = script
    sender = make_sender(pool, receiver)
    run_once(sender)
    rows = hl7_rows(pool)
    # patient 1's first message got AE: their second is held back; patient 2's went out
    assert [r["status"] for r in rows] == ["pending", "sent", "pending"]
    assert rows[2]["last_error"].startswith("held behind an older message")
    # the second claim: patient 1's second message is held while the first is not yet due
    with pool.connection() as conn, conn.transaction():
        conn.execute("UPDATE outbox SET next_attempt_at = now() WHERE id = %s", (rows[2]["id"],))
    run_once(sender)
    assert [r["status"] for r in hl7_rows(pool)] == ["pending", "sent", "pending"]
    make_due(pool)
    run_once(sender)
    assert [r["status"] for r in hl7_rows(pool)] == ["sent"] * 3
    patient_1 = [m for m in receiver.received if "MRN-1" in m.text and m.answer == "AA"]
    assert [m.text.count("|60|") + 2 * m.text.count("|62|") for m in patient_1] == [1, 2]


def test_an_unreadable_row_is_parked_and_the_rest_go(
    pool: ConnectionPool, home: Home, receiver: MllpReceiver
) -> None:
    home.ingest([hr(72), hr(73, minute=1)])
    with pool.connection() as conn, conn.transaction():
        conn.execute(
            'UPDATE outbox SET readings = \'{"heart_rate": {"value": "x"}}\''
            " WHERE id = (SELECT min(id) FROM outbox WHERE destination = 'hl7')"
        )
    run_once(make_sender(pool, receiver))
    assert [r["status"] for r in hl7_rows(pool)] == ["failed", "sent"]
    assert len(receiver.accepted) == 1


def test_control_id_survives_a_retry_of_a_whole_panel(
    pool: ConnectionPool, home: Home, receiver: MllpReceiver
) -> None:
    receiver.script = lambda control_id, attempt: "drop" if attempt == 1 else "AA"
    home.ingest(bp(120, 80, minute=5))
    sender = make_sender(pool, receiver)
    run_once(sender)
    make_due(pool)
    run_once(sender)
    assert len(receiver.received) == 2 and len(receiver.accepted) == 1
    assert T0 + timedelta(minutes=5)  # the panel's time: in the message's OBR-7
    assert (T0 + timedelta(minutes=5)).strftime("%Y%m%d%H%M%S") in receiver.received[1].text


def test_an_ack_naming_another_message_is_no_answer_an_empty_msa_2_is(
    pool: ConnectionPool, home: Home, receiver: MllpReceiver
) -> None:
    home.ingest([hr(72), hr(73, minute=1)])
    answers = iter([ack_text("AA", "SOMETHING-ELSE")])
    receiver.script = lambda control_id, attempt: next(answers, ack_text("AA", ""))
    sender = make_sender(pool, receiver)
    assert run_once(sender) == (2, True)
    rows = hl7_rows(pool)
    assert rows[0]["status"] == "pending" and "names MSH-10 'SOMETHING-ELSE'" in rows[0]["last_error"]
    make_due(pool)
    run_once(sender)
    assert [r["status"] for r in hl7_rows(pool)] == ["sent", "sent"]

"""The HL7 export inside ``serve``: readings posted over HTTP reach a receiver that is not ours as
valid ORU^R01, a refusal is parked and shown on ``GET /v1/exports`` and sent again from there,
and the service stops cleanly with the connection open."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hl7apy.parser import parse_message

from ingest.hl7.component import EXTRAS_KEY, Hl7Parts
from ingest.settings import Settings
from ingest.store import roster
from tests.ingest.hl7.helpers import MllpClient
from tests.support.export import T0, add_patient, bp, hr
from tests.support.mllp_receiver import MllpReceiver
from tests.support.service import RunningService, running_service
from tests.support.waiting import wait_until


@pytest.fixture
def receiver() -> Iterator[MllpReceiver]:
    with MllpReceiver() as r:
        yield r


@pytest.fixture
def service(settings: Settings, receiver: MllpReceiver) -> Iterator[RunningService]:
    s = settings.model_copy(
        update={
            "mqtt_enabled": False,
            "hl7_mllp_url": receiver.url,
            "hl7_poll_interval_s": 0.1,
            "hl7_retry_min_s": 0.2,
            "hl7_retry_max_s": 1.0,
            "fhir_panel_wait_s": 0.0,
        }
    )
    with running_service(s) as svc:
        yield svc


def test_posted_readings_arrive_once_refusals_are_parked_and_retried(
    service: RunningService, receiver: MllpReceiver
) -> None:
    add_patient(service.services.pool, mrn="MRN-9")
    refused: list[str] = []

    def script(control_id: str, attempt: int) -> str:
        if not refused:
            refused.append(control_id)
        return "AR" if control_id == refused[0] and attempt == 1 else "AA"

    receiver.script = script
    token = service.token("admin")
    with service.client(token) as http:
        readings = [hr(70 + i, minute=i) for i in range(20)] + bp(130, 85, minute=30)
        r = http.post("/v1/readings", json={"device_id": "F0F1F2F3F4F5", "readings": readings})
        assert r.status_code == 200 and r.json()["accepted"] == 22, r.text
        wait_until(lambda: len(receiver.accepted) == 20, 30, "20 messages accepted")

        def failures() -> list[dict[str, object]]:
            found: list[dict[str, object]] = http.get("/v1/exports", params={"destination": "hl7"}).json()[
                "failures"
            ]
            return found

        wait_until(lambda: len(failures()) == 1, 30, "the refusal to be recorded")
        (failed,) = failures()
        assert (failed["destination"], failed["status"]) == ("hl7", "failed")
        assert failed["reason"] == "AR: Unknown patient ^ MRN|x"
        r = http.post(f"/v1/exports/{failed['id']}/retry")
        assert r.status_code == 200, r.text
        wait_until(lambda: len(receiver.accepted) == 21, 30, "the refused message, sent again")
        # recorded when its claim ends, just after the ACK
        wait_until(lambda: http.get(f"/v1/exports/{failed['id']}").json()["status"] == "sent", 30, "recorded")
        row = http.get(f"/v1/exports/{failed['id']}").json()
        assert row["fhir_reference"] == refused[0]
    assert receiver.invalid == []
    assert set(receiver.accepted.values()) == {1}
    (component,) = [c for c in service.runtime.components if c.name == "hl7"]
    parts = component.extras[EXTRAS_KEY]
    assert isinstance(parts, Hl7Parts) and parts.delivery is not None
    assert parts.delivery.connection.connects == 1  # one connection, kept open
    metrics = service.client().get("/metrics").text
    assert 'rpm_hl7_messages_total{outcome="sent"} 21.0' in metrics
    assert 'rpm_hl7_messages_total{outcome="rejected"} 1.0' in metrics


def test_stops_cleanly_with_the_connection_open(settings: Settings, receiver: MllpReceiver) -> None:
    s = settings.model_copy(
        update={"mqtt_enabled": False, "hl7_mllp_url": receiver.url, "hl7_poll_interval_s": 0.1}
    )
    with running_service(s) as svc:
        add_patient(svc.services.pool)
        with svc.client(svc.token("admin")) as http:
            http.post("/v1/readings", json={"device_id": "F0F1F2F3F4F5", "readings": [hr(70)]})
        wait_until(lambda: len(receiver.accepted) == 1, 30, "the message")
        (component,) = [c for c in svc.runtime.components if c.name == "hl7"]
        parts = component.extras[EXTRAS_KEY]
        assert isinstance(parts, Hl7Parts) and parts.delivery is not None
        delivery = parts.delivery
    assert delivery._thread is not None and not delivery._thread.is_alive()
    assert not delivery.connection.is_open


def test_receiver_away_for_a_while_then_back(service: RunningService, receiver: MllpReceiver) -> None:
    add_patient(service.services.pool)
    receiver.down()
    with service.client(service.token("admin")) as http:
        readings = [hr(60 + i, minute=i) for i in range(10)]
        r = http.post("/v1/readings", json={"device_id": "F0F1F2F3F4F5", "readings": readings})
        assert r.json()["accepted"] == 10

        def hl7_rows() -> list[dict[str, object]]:
            rows: list[dict[str, object]] = http.get(
                "/v1/exports/rows", params={"status": "pending", "destination": "hl7"}
            ).json()
            return rows

        wait_until(
            lambda: any("cannot connect" in str(row["reason"]) for row in hl7_rows()), 30, "a failed attempt"
        )
        receiver.up()
        wait_until(lambda: len(receiver.accepted) == 10, 60, "every message once the receiver is back")
        wait_until(lambda: hl7_rows() == [], 30, "every row recorded as sent")
    assert set(receiver.accepted.values()) == {1} and receiver.invalid == []


def test_a_name_registered_by_adt_comes_back_escaped_in_the_results(
    settings: Settings, receiver: MllpReceiver
) -> None:
    """ADT A01 in with ^ and | escaped in PID-5, a reading, ORU^R01 out with the same name."""
    s = settings.model_copy(
        update={"mqtt_enabled": False, "hl7_mllp_url": receiver.url, "hl7_listen": "127.0.0.1:0",
                "hl7_poll_interval_s": 0.1, "hl7_mrn_authority": "HOSP"}
    )  # fmt: skip
    with running_service(s) as svc:
        (component,) = [c for c in svc.runtime.components if c.name == "hl7"]
        parts = component.extras[EXTRAS_KEY]
        assert isinstance(parts, Hl7Parts) and parts.listener is not None
        client = MllpClient(parts.listener.port)
        a01 = (
            "MSH|^~\\&|EPIC|HOSP|RPM|CLINIC|20261201||ADT^A01^ADT_A01|REG-1|P|2.5\r"
            "PID|||MRN-77^^^HOSP^MR||O\\F\\Neil^Ann\\S\\Marie Zoë\r"
        )
        assert parse_message(client.send(a01)).msa.msa_1.value == "AA"
        client.close()
        assert 'rpm_hl7_adt_answers_total{code="AA"} 1.0' in svc.client().get("/metrics").text
        with svc.services.transaction() as conn:
            (patient_id,) = conn.execute("SELECT id FROM patients WHERE mrn = 'MRN-77'").fetchone() or ()
            assert conn.execute(
                "SELECT display_name FROM patients WHERE id = %s", (patient_id,)
            ).fetchone() == ("Ann^Marie Zoë O|Neil",)
            roster.create_device(
                conn, device_id="CUFF-77", clinic_id="default", type_="bp", manufacturer=None, model=None,
                serial=None,
            )  # fmt: skip
            roster.assign_device(conn, device_id="CUFF-77", patient_id=patient_id, since=T0)
        with svc.client(svc.token("admin")) as http:
            r = http.post("/v1/readings", json={"device_id": "CUFF-77", "readings": [hr(64, minute=5)]})
            assert r.json()["accepted"] == 1, r.text
        wait_until(lambda: len(receiver.accepted) == 1, 30, "the ORU^R01")
    (got,) = receiver.received
    pid = got.message.oru_r01_patient_result.oru_r01_patient.pid
    assert pid.pid_3.to_er7() == "MRN-77^^^HOSP^MR"
    assert pid.pid_5.to_er7() == "O\\F\\Neil^Ann\\S\\Marie Zoë"

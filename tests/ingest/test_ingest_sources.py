"""Every source goes through the one ingest function (Services.ingest): a bad message is
dead-lettered with its reason while the good ones around it are stored, in one transaction, and
counted under its source after the commit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from ingest.mqtt.delivery import to_delivery
from ingest.mqtt.storage import BatchStore
from ingest.pipeline import Envelope, Outcome
from ingest.store import roster
from ingest.store.deadletters import DeadLetter
from tests.support.service import RunningService

NOW = datetime.now(UTC).replace(microsecond=0)


def hr(value: Any, minutes_ago: int) -> dict[str, Any]:
    at = (NOW - timedelta(minutes=minutes_ago)).isoformat().replace("+00:00", "Z")
    return {"metric": "heart_rate", "value": value, "unit": "/min", "measured_at": at}


def register(service: RunningService, device_id: str) -> None:
    with service.services.transaction() as conn:
        patient = roster.create_patient(
            conn, clinic_id="default", mrn=f"MRN-{device_id}", display_name="P", fhir_patient_id=None
        )
        roster.create_device(
            conn, device_id=device_id, clinic_id="default", type_="x", manufacturer=None, model=None,
            serial=None,
        )
        roster.assign_device(
            conn, device_id=device_id, patient_id=patient["id"], since=NOW - timedelta(days=1)
        )


def letters(service: RunningService) -> list[dict[str, Any]]:
    with service.services.transaction() as conn:
        rows = conn.execute(
            "SELECT source, topic, device_id, reading_index, reason, raw, replay_result"
            " FROM dead_letters ORDER BY id"
        ).fetchall()
    keys = ("source", "topic", "device_id", "reading_index", "reason", "raw", "replay_result")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def stored(service: RunningService) -> list[float]:
    with service.services.transaction() as conn:
        rows = conn.execute("SELECT value FROM readings ORDER BY measured_at").fetchall()
    return [row[0] for row in rows]


def metric(service: RunningService, name: str, source: str) -> float:
    value = service.services.metrics.registry.get_sample_value(name, {"source": source})
    return 0.0 if value is None else value


@pytest.fixture
def admin(service: RunningService) -> httpx.Client:
    return service.client(service.token("admin"))


def test_the_one_function_stores_dead_letters_and_commits_the_caller_s_rows_together(
    service: RunningService,
) -> None:
    register(service, "DEMO-1")

    def envelope(raw: bytes) -> Envelope:
        return Envelope(source="demo", raw=raw, received_at=NOW, device_id="DEMO-1")

    good = envelope(json.dumps({"readings": [hr(60, 3), hr(900, 2)]}).encode())
    bad = envelope(b'{"readings": [')
    also_good = envelope(json.dumps(hr(62, 1)).encode())
    seen: list[list[Outcome]] = []

    def before_commit(conn: psycopg.Connection[Any], outcomes: list[Outcome]) -> None:
        seen.append(outcomes)
        conn.execute("CREATE TABLE committed_with_the_batch ()")

    outcomes = service.services.ingest(
        "demo",
        [good, bad, also_good],
        refused=[DeadLetter.build("demo", "refused before parsing", b"\x00")],
        before_commit=before_commit,
    )
    assert seen == [outcomes]
    assert [(o.accepted, len(o.rejected), o.error is not None) for o in outcomes] == [
        (1, 1, False), (0, 0, True), (1, 0, False),
    ]
    assert stored(service) == [60, 62]
    assert [(x["source"], x["reading_index"], x["reason"]) for x in letters(service)] == [
        ("demo", 1, outcomes[0].rejected[0].reason),
        ("demo", None, outcomes[1].error),
        ("demo", None, "refused before parsing"),
    ]
    assert "plausible" in outcomes[0].rejected[0].reason and "JSON" in str(outcomes[1].error)
    with service.services.transaction() as conn:
        assert conn.execute("SELECT to_regclass('committed_with_the_batch')").fetchone() != (None,)
    assert metric(service, "rpm_readings_stored_total", "demo") == 2
    assert metric(service, "rpm_readings_rejected_total", "demo") == 1
    assert metric(service, "rpm_messages_dead_lettered_total", "demo") == 2  # not JSON + refused


def test_nothing_is_stored_or_counted_when_the_transaction_does_not_commit(
    service: RunningService,
) -> None:
    register(service, "DEMO-2")
    env = Envelope(source="demo", raw=json.dumps(hr(70, 1)).encode(), received_at=NOW, device_id="DEMO-2")

    def fail(conn: psycopg.Connection[Any], outcomes: list[Outcome]) -> None:
        raise RuntimeError("the audit row could not be written")

    with pytest.raises(RuntimeError):
        service.services.ingest(
            "demo", [env], refused=[DeadLetter.build("demo", "r", b"")], before_commit=fail
        )
    assert stored(service) == [] and letters(service) == []
    assert metric(service, "rpm_readings_stored_total", "demo") == 0
    assert metric(service, "rpm_messages_dead_lettered_total", "demo") == 0


def test_a_prepared_batch_that_did_not_commit_is_ingested_again_once(service: RunningService) -> None:
    """The MQTT writer parses a batch ahead (Pipeline.prepare) and, when its transaction fails,
    stores the same preparation again: readings, dead letters and counts come out once."""
    register(service, "DEMO-3")
    batch = [
        Envelope(source="demo", raw=raw, received_at=NOW, device_id="DEMO-3")
        for raw in (json.dumps({"readings": [hr(70, 2), hr(900, 1)]}).encode(), b"{")
    ]
    prepared = service.services.pipeline.prepare(batch)

    def fail(conn: psycopg.Connection[Any], outcomes: list[Outcome]) -> None:
        raise RuntimeError("the transaction failed")

    with pytest.raises(RuntimeError):
        service.services.ingest("demo", prepared, before_commit=fail)
    outcomes = service.services.ingest("demo", prepared)
    assert [(o.accepted, len(o.rejected), o.error is not None) for o in outcomes] == [
        (1, 1, False), (0, 0, True),
    ]
    assert stored(service) == [70]
    assert [(x["reading_index"], x["reason"]) for x in letters(service)] == [
        (1, outcomes[0].rejected[0].reason), (None, outcomes[1].error),
    ]
    assert metric(service, "rpm_readings_stored_total", "demo") == 1
    assert metric(service, "rpm_readings_rejected_total", "demo") == 1


def test_mqtt_a_refused_topic_and_a_bad_payload_are_dead_lettered_between_good_messages(
    service: RunningService,
) -> None:
    register(service, "OX-1")
    store = BatchStore(service.services)

    def delivery(topic: bytes, payload: bytes, mid: int) -> Any:
        return to_delivery(
            prefix="rpm", topic=topic, payload=payload, mid=mid, qos=1, generation=1, received_at=NOW
        )

    batch = [
        delivery(b"rpm/OX-1/readings", json.dumps(hr(61, 3)).encode(), 1),
        delivery(b"rpm/bad id/readings", json.dumps(hr(70, 2)).encode(), 2),
        delivery(b"rpm/OX-1/readings", b"\xff not UTF-8", 3),
        delivery(b"rpm/OX-1/readings", json.dumps(hr(63, 1)).encode(), 4),
    ]
    store.store(batch)
    assert stored(service) == [61, 63]
    found = letters(service)
    assert [(x["source"], x["topic"], x["device_id"]) for x in found] == [
        ("mqtt", "rpm/OX-1/readings", "OX-1"),  # the pipeline's letters come first
        ("mqtt", "rpm/bad id/readings", None),
    ]
    assert "not UTF-8" in found[0]["reason"] and bytes(found[0]["raw"]) == b"\xff not UTF-8"
    assert "topic device id" in found[1]["reason"]
    assert metric(service, "rpm_messages_dead_lettered_total", "mqtt") == 2
    assert metric(service, "rpm_readings_stored_total", "mqtt") == 2

    store.refuse(batch[3], psycopg.errors.CheckViolation())
    last = letters(service)[-1]
    assert last["reason"].startswith("storage refused this message: CheckViolation")
    assert service.services.metrics.registry.get_sample_value("rpm_mqtt_messages_isolated_total") == 1


def test_http_a_body_that_is_not_json_is_dead_lettered_and_the_next_one_stored(
    service: RunningService, admin: httpx.Client
) -> None:
    register(service, "CUFF-1")
    body = b'{"device_id": "CUFF-1", "readings": [{"metric": "heart_rate", "value": 7'
    r = admin.post("/v1/readings", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]
    good = {"device_id": "CUFF-1", "readings": [hr(70, 2), hr(9000, 1)]}
    r = admin.post("/v1/readings", json=good)
    assert r.status_code == 200 and r.json()["accepted"] == 1 and r.json()["rejected"][0]["index"] == 1
    [malformed, rejected] = letters(service)
    assert (malformed["source"], bytes(malformed["raw"])) == ("http", body)
    assert "not valid JSON" in malformed["reason"]
    assert (rejected["source"], rejected["device_id"], rejected["reading_index"]) == ("http", "CUFF-1", 1)
    assert stored(service) == [70]
    assert metric(service, "rpm_messages_dead_lettered_total", "http") == 1
    # refused before authorization and parsing: not a dead letter, nothing stored
    r = admin.post("/v1/readings", json={"device_id": "CUFF-1", "readings": []})
    assert r.status_code == 422 and len(letters(service)) == 2


def test_replay_goes_through_the_same_function_and_records_its_result(
    service: RunningService, admin: httpx.Client
) -> None:
    r = admin.post("/v1/readings", json={"device_id": "LATE-1", "readings": [hr(70, 1)]})
    assert r.json()["rejected"] == [{"index": 0, "reason": "device 'LATE-1' is not registered"}]
    [letter] = admin.get("/v1/dead-letters").json()["dead_letters"]
    again = admin.post(f"/v1/dead-letters/{letter['id']}/replay")
    assert again.status_code == 200 and again.json()["accepted"] == 0
    [row] = letters(service)  # a failed replay makes no new dead letter
    assert row["replay_result"] == "rejected: device 'LATE-1' is not registered"
    register(service, "LATE-1")
    ok = admin.post(f"/v1/dead-letters/{letter['id']}/replay")
    assert ok.status_code == 200 and ok.json()["accepted"] == 1
    assert letters(service)[0]["replay_result"] == "stored 1, duplicates 0"
    assert stored(service) == [70]
    assert metric(service, "rpm_readings_stored_total", "replay") == 1
    assert metric(service, "rpm_readings_rejected_total", "replay") == 1
    assert admin.post("/v1/dead-letters/999999/replay").status_code == 404

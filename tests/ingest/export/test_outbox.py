"""The PostgreSQL outbox on a real database: rows written with the readings, panels, patients
without a FHIR id, and claims (exclusive, leased, recorded only when the claim ends)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from devices.models import Reading
from fhir_export.outbox import Delivered
from ingest.errors import Conflict
from ingest.export import store
from ingest.export.outbox import LATE_REASON, WAITING_REASON, PgOutbox, reading_from_json, reading_json
from tests.support.export import T0, Home, bp, hr, make_home


def test_rows_are_written_in_the_ingest_transaction(home: Home) -> None:
    outcome = home.ingest([hr(70, minute=0), hr(71, minute=1), *bp(128, 84, 98, minute=2)])
    assert outcome.accepted == 5
    rows = home.rows()
    assert [(r["kind"], r["export_key"], r["status"]) for r in rows] == [
        ("reading", "heart_rate", "pending"),
        ("reading", "heart_rate", "pending"),
        ("bp_panel", "bp_panel", "pending"),
    ]
    panel = rows[2]
    assert set(panel["readings"]) == {"systolic_bp", "diastolic_bp", "mean_arterial_pressure"}
    assert panel["readings"]["systolic_bp"]["value"] == 128
    assert all(r["patient_id"] == home.patient_id and r["clinic_id"] == "default" for r in rows)

    # The same readings again: absorbed by the store, no new outbox rows.
    again = home.ingest([hr(70, minute=0), *bp(128, 84, 98, minute=2)])
    assert again.accepted == 0 and again.duplicates == 4
    assert len(home.rows()) == 3


def test_a_failed_ingest_transaction_leaves_no_row(home: Home) -> None:
    import json
    from datetime import UTC, datetime

    from ingest.pipeline import Envelope

    body = json.dumps({"readings": [hr(70)]}).encode()
    envelope = Envelope(source="test", raw=body, received_at=datetime.now(UTC), device_id=home.device_id)
    with pytest.raises(RuntimeError), home.pool.connection() as conn, conn.transaction():
        home.pipeline.process(conn, [envelope], collect=[])
        assert conn.execute("SELECT count(*) FROM outbox").fetchone() == (1,)
        raise RuntimeError("the batch failed after the hook ran")
    assert home.rows() == []
    with home.pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM readings").fetchone() == (0,)


def test_reading_round_trips_through_a_row() -> None:
    reading = Reading(
        device_id="dev-1", metric="body_weight", value=82.28, unit="kg", measured_at=T0,
        original_value=181.4, original_unit="[lb_av]", status=("body_movement", "x"),
        source="ble", gateway_id="hub-1", device_time=T0 - timedelta(seconds=3),
    )  # fmt: skip
    import json

    stored = json.loads(json.dumps(reading_json(reading)))
    assert reading_from_json("dev-1", T0, "body_weight", stored) == reading


def test_single_reading_row_gives_back_the_stored_reading(home: Home) -> None:
    """A single reading's row keeps it in typed columns; the claim rebuilds the same reading,
    optional fields included, and the exports API shows the same document."""
    device_time = (T0 - timedelta(seconds=3)).isoformat()
    home.ingest(
        [
            hr(70, minute=0),
            hr(130, minute=1, status=["irregular_pulse", "motion"], source="ble", gateway_id="hub-1",
               device_time=device_time),
        ]
    )  # fmt: skip
    rows = home.rows()
    assert [r["readings"] for r in rows] == [None, None]  # not a JSON document: typed columns
    with home.pool.connection() as conn:
        (shown,) = store.get_export(conn, rows[1]["id"])["readings"].values()
    assert shown == {
        "value": 130, "unit": "/min", "original_value": 130, "original_unit": "/min",
        "status": ["irregular_pulse", "motion"], "source": "ble", "gateway_id": "hub-1",
        "device_time": shown["device_time"],
    }  # fmt: skip
    with PgOutbox(home.pool, worker="w").claim(10) as claim:
        plain, flagged = (item.item.readings[0] for item in claim.items)
    assert (plain.value, plain.status, plain.source, plain.device_time) == (70.0, (), None, None)
    assert flagged.status == ("irregular_pulse", "motion")
    assert (flagged.source, flagged.gateway_id) == ("ble", "hub-1")
    assert flagged.device_time == T0 - timedelta(seconds=3)
    assert flagged.measured_at == T0 + timedelta(minutes=1) and flagged.unit == "/min"


def test_incomplete_panel_waits_for_its_other_half_then_goes_at_once(pool: ConnectionPool) -> None:
    home = make_home(pool, fhir_patient_id="pat-1", panel_wait_s=600)
    home.ingest(bp(128, None, minute=5))
    (row,) = home.rows()
    assert set(row["readings"]) == {"systolic_bp"}
    assert row["next_attempt_at"] > row["created_at"] + timedelta(seconds=590)
    assert _claimable(pool) == []
    home.ingest(bp(None, 84, minute=5))
    (row,) = home.rows()
    assert set(row["readings"]) == {"systolic_bp", "diastolic_bp"}
    assert _claimable(pool) == [row["id"]]


def test_late_component_joins_its_unsent_panel(home: Home) -> None:
    home.ingest(bp(128, 84, minute=0))
    home.ingest(bp(None, None, 99, minute=0))
    (row,) = home.rows()
    assert set(row["readings"]) == {"systolic_bp", "diastolic_bp", "mean_arterial_pressure"}
    outbox = PgOutbox(home.pool, worker="w")
    with outbox.claim(10) as claim:
        (item,) = claim.items
        assert [r.metric for r in item.item.readings] == [
            "systolic_bp",
            "diastolic_bp",
            "mean_arterial_pressure",
        ]
        assert item.item.fhir_patient_id == "pat-1"
        assert item.item.device.manufacturer == "Omron"


def test_late_component_after_its_panel_was_sent_is_kept_as_a_failure(home: Home) -> None:
    home.ingest(bp(128, 84, minute=0))
    outbox = PgOutbox(home.pool, worker="w")
    with outbox.claim(10) as claim:
        # ... and while the panel is on its way, the mean pressure arrives.
        home.ingest(bp(None, None, 99, minute=0))
        claim.mark_sent([Delivered(claim.items[0].id, "Observation/1", True)])
    home.ingest(bp(None, None, None, minute=0) + [hr(60, minute=0)])  # nothing new for the panel
    panel, late, pulse = home.rows()
    assert panel["status"] == "sent" and set(panel["readings"]) == {"systolic_bp", "diastolic_bp"}
    assert (late["kind"], late["export_key"], late["status"]) == (
        "late_component", "late:mean_arterial_pressure", "failed",
    )  # fmt: skip
    assert late["last_error"] == LATE_REASON
    assert pulse["export_key"] == "heart_rate"
    with home.pool.connection() as conn, pytest.raises(Conflict, match="arrived after its panel"):
        store.requeue(conn, late["id"])
    with home.pool.connection() as conn, pytest.raises(Conflict, match="sent already"):
        store.requeue(conn, panel["id"])


def test_patient_without_fhir_id_waits_and_is_released_when_linked(pool: ConnectionPool) -> None:
    home = make_home(pool, fhir_patient_id=None)
    home.ingest([hr(70), *bp(minute=1)])
    rows = home.rows()
    assert {r["status"] for r in rows} == {"waiting"}
    assert {r["last_error"] for r in rows} == {WAITING_REASON}
    assert _claimable(pool) == []
    with pool.connection() as conn, pytest.raises(Conflict, match="waits for its patient"):
        store.requeue(conn, rows[0]["id"])
    with pool.connection() as conn, conn.transaction():
        patient, released = store.update_patient(
            conn, home.patient_id, fhir_patient_id="pat-9", set_fhir_patient_id=True
        )
    assert patient["fhir_patient_id"] == "pat-9" and released == 2
    assert {(r["status"], r["last_error"]) for r in home.rows()} == {("pending", None)}
    with PgOutbox(pool, worker="w").claim(10) as claim:
        assert {i.item.fhir_patient_id for i in claim.items} == {"pat-9"}


def test_a_claim_finds_an_unlinked_patient_and_moves_the_rows_to_waiting(home: Home) -> None:
    home.ingest([hr(70)])
    with home.pool.connection() as conn, conn.transaction():
        store.update_patient(conn, home.patient_id, fhir_patient_id=None, set_fhir_patient_id=True)
    with PgOutbox(home.pool, worker="w").claim(10) as claim:
        assert claim.items == []
    ((status, reason, claimed),) = [(r["status"], r["last_error"], r["claim_token"]) for r in home.rows()]
    assert (status, reason, claimed) == ("waiting", WAITING_REASON, None)


def test_linking_waits_for_an_ingest_transaction_writing_that_patients_rows(pool: ConnectionPool) -> None:
    """No row can be written 'waiting' just after the patient's waiting rows were released."""
    home = make_home(pool, fhir_patient_id=None)
    import json
    from datetime import UTC, datetime

    from ingest.pipeline import Envelope

    body = json.dumps({"readings": [hr(70)]}).encode()
    envelope = Envelope(source="test", raw=body, received_at=datetime.now(UTC), device_id=home.device_id)
    linked = threading.Event()

    def link() -> None:
        with pool.connection() as conn, conn.transaction():
            store.update_patient(conn, home.patient_id, fhir_patient_id="pat-2", set_fhir_patient_id=True)
        linked.set()

    with pool.connection() as conn, conn.transaction():
        home.pipeline.process(conn, [envelope], collect=[])  # holds the patient share-locked until commit
        linker = threading.Thread(target=link)
        linker.start()
        assert not linked.wait(0.5), "linking must wait for the ingest transaction"
    linker.join(10)
    assert linked.is_set()
    assert [r["status"] for r in home.rows()] == ["pending"]


def test_claims_are_exclusive_and_oldest_first(home: Home) -> None:
    home.ingest([hr(60 + i, minute=i) for i in range(10)])
    first, second = PgOutbox(home.pool, worker="a"), PgOutbox(home.pool, worker="b")
    with first.claim(4) as a, second.claim(100) as b:
        ids_a = [i.id for i in a.items]
        ids_b = [i.id for i in b.items]
        assert len(ids_a) == 4 and len(ids_b) == 6
        assert not set(ids_a) & set(ids_b)
        assert max(ids_a) < min(ids_b)
        assert {r["claimed_by"] for r in home.rows()} == {"a", "b"}


def test_concurrent_claims_never_share_a_row(home: Home) -> None:
    home.ingest([hr(60 + i % 100, minute=i / 10) for i in range(300)])
    seen: list[list[int]] = []
    lock = threading.Lock()

    def take(name: str) -> None:
        outbox = PgOutbox(home.pool, worker=name)
        while True:
            with outbox.claim(7) as claim:
                if not claim.items:
                    return
                with lock:
                    seen.append([i.id for i in claim.items])
                claim.mark_sent([Delivered(i.id, None, True) for i in claim.items])

    threads = [threading.Thread(target=take, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    all_ids = [i for ids in seen for i in ids]
    assert len(all_ids) == len(set(all_ids)) == 300
    assert {r["status"] for r in home.rows()} == {"sent"}


def test_outcomes_are_recorded_when_the_claim_ends(home: Home) -> None:
    home.ingest([hr(61, minute=1), hr(62, minute=2), hr(63, minute=3), hr(64, minute=4)])
    outbox = PgOutbox(home.pool, worker="w")
    with outbox.claim(10) as claim:
        one, two, three, four = (i.id for i in claim.items)
        claim.mark_sent([Delivered(one, "Observation/a", True), Delivered(two, "Observation/b", False)])
        claim.mark_parked(three, "EHR refused (HTTP 422): bad code")
        claim.mark_retry([four], "EHR unreachable (ConnectError)", 120.0)
        assert {r["status"] for r in home.rows()} == {"pending"}  # nothing written yet
    rows = {r["id"]: r for r in home.rows()}
    assert (rows[one]["status"], rows[one]["fhir_reference"], rows[one]["created_in_ehr"]) == (
        "sent", "Observation/a", True,
    )  # fmt: skip
    assert rows[two]["created_in_ehr"] is False and rows[two]["sent_at"] is not None
    assert (rows[three]["status"], rows[three]["last_error"]) == (
        "failed",
        "EHR refused (HTTP 422): bad code",
    )
    retry = rows[four]
    assert (retry["status"], retry["attempts"], retry["last_error"]) == (
        "pending", 1, "EHR unreachable (ConnectError)",
    )  # fmt: skip
    assert retry["next_attempt_at"] - retry["updated_at"] > timedelta(seconds=119)
    assert all(r["claim_token"] is None and r["claimed_until"] is None for r in rows.values())
    assert _claimable(home.pool) == []

    with home.pool.connection() as conn, conn.transaction():
        requeued = store.requeue(conn, three)
    assert (requeued["status"], requeued["attempts"]) == ("pending", 0)
    assert _claimable(home.pool) == [three]


def test_an_exception_frees_the_rows_at_once_and_records_nothing(home: Home) -> None:
    home.ingest([hr(61)])
    outbox = PgOutbox(home.pool, worker="w", lease_s=3600)
    with pytest.raises(RuntimeError), outbox.claim(10) as claim:
        claim.mark_parked(claim.items[0].id, "never recorded")
        raise RuntimeError("worker failed mid-bundle")
    (row,) = home.rows()
    assert (row["status"], row["claim_token"], row["last_error"]) == ("pending", None, None)
    assert len(_claimable(home.pool)) == 1


def test_a_crashed_workers_rows_come_back_after_the_lease(home: Home) -> None:
    home.ingest([hr(61)])
    crashed = PgOutbox(home.pool, worker="crashed", lease_s=1)
    context = crashed.claim(10)
    held = context.__enter__()  # the worker dies holding the claim: its context never ends
    assert len(held.items) == 1
    other = PgOutbox(home.pool, worker="other")
    with other.claim(10) as claim:
        assert claim.items == []
    time.sleep(1.2)
    with other.claim(10) as claim:
        assert [i.id for i in claim.items] == [held.items[0].id]
        claim.mark_sent([Delivered(claim.items[0].id, "Observation/1", True)])
    # The crashed claim's late word is ignored: the row is no longer held by it.
    held.mark_retry([held.items[0].id], "too late", 5)
    context.__exit__(None, None, None)
    (row,) = home.rows()
    assert (row["status"], row["attempts"]) == ("sent", 0)


def test_renew_keeps_a_slow_claim_from_expiring(home: Home) -> None:
    home.ingest([hr(61)])
    slow = PgOutbox(home.pool, worker="slow", lease_s=1)
    other = PgOutbox(home.pool, worker="other")
    with slow.claim(10) as claim:
        for _ in range(4):
            time.sleep(0.4)
            assert slow.renew() == 1
            with other.claim(10) as stolen:
                assert stolen.items == []
        claim.mark_sent([Delivered(claim.items[0].id, None, True)])
    assert slow.renew() == 0
    assert home.rows()[0]["status"] == "sent"


def test_an_unreadable_row_is_parked_with_the_reason(home: Home) -> None:
    home.ingest([hr(61, minute=1), hr(62, minute=2)])
    first = home.rows()[0]["id"]
    home.execute(
        'UPDATE outbox SET readings = \'{"heart_rate": {"value": "not a number"}}\' WHERE id = %s',
        (first,),
    )
    with PgOutbox(home.pool, worker="w").claim(10) as claim:
        assert [i.id for i in claim.items] == [first + 1]
    row = home.rows()[0]
    assert row["status"] == "failed" and "unreadable" in row["last_error"]


def test_unknown_status_or_kind_is_refused_by_the_schema(home: Home) -> None:
    home.ingest([hr(61)])
    for column, value in (("status", "lost"), ("kind", "other"), ("export_key", "Bad Key!")):
        with pytest.raises(psycopg.errors.CheckViolation):
            home.execute(f"UPDATE outbox SET {column} = %s", (value,))


def test_the_schema_takes_only_the_named_destinations(home: Home) -> None:
    """Migration 0019: the destinations are listed, not matched by a pattern."""
    home.ingest([hr(61)])
    for destination in ("fhir", "hl7", "dicom"):
        home.execute("UPDATE outbox SET destination = %s", (destination,))
        assert home.rows()[0]["destination"] == destination
    for other in ("pacs", "FHIR", "fhir ", "", "hl7_v2"):
        with pytest.raises(psycopg.errors.CheckViolation) as refused:
            home.execute("UPDATE outbox SET destination = %s", (other,))
        assert refused.value.diag.constraint_name == "outbox_destination_check"
    with home.pool.connection() as conn:
        validated = conn.execute(
            "SELECT convalidated FROM pg_constraint WHERE conname = 'outbox_destination_check'"
        ).fetchall()
    assert validated == [(True,)]  # checked against the rows already there, not only new ones


def test_purge_keeps_recent_and_unsent_rows(home: Home) -> None:
    home.ingest([hr(61, minute=1), hr(62, minute=2), hr(63, minute=3)])
    ids = [r["id"] for r in home.rows()]
    home.execute(
        "UPDATE outbox SET status = 'sent', sent_at = now() - interval '40 days' WHERE id = %s",
        (ids[0],),
    )
    home.execute("UPDATE outbox SET status = 'sent', sent_at = now() WHERE id = %s", (ids[1],))
    with home.pool.connection() as conn, conn.transaction():
        assert store.purge_sent(conn, keep_days=30) == 1
    assert [r["id"] for r in home.rows()] == ids[1:]


def _claimable(pool: ConnectionPool) -> list[int]:
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= now() ORDER BY id"
        ).fetchall()
    return [r[0] for r in rows]


def test_release_linked_catches_patients_linked_by_any_path(pool: ConnectionPool) -> None:
    home = make_home(pool, fhir_patient_id=None)
    home.ingest([hr(61)])
    home.execute("UPDATE patients SET fhir_patient_id = 'pat-5'")  # not through the API
    with pool.connection() as conn, conn.transaction():
        assert store.release_linked(conn) == 1
    assert home.rows()[0]["status"] == "pending"

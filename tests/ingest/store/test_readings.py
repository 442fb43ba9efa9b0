"""insert_readings on a real database: a plain INSERT when every key is new, ON CONFLICT after a
unique violation; patients attributed by the assignment at each reading's time; ``reading_new``
holding exactly the rows the last call stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg_pool import ConnectionPool

from devices.models import Reading
from ingest.store import roster
from ingest.store.readings import NEW_READINGS, InsertResult, InsertStatus, insert_readings

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
RECEIVED = T0 + timedelta(hours=1)
Key = tuple[str, str, datetime]


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def hr(device_id: str, minute: float, value: float = 70, **extra: Any) -> Reading:
    return Reading(
        device_id=device_id, metric="heart_rate", value=value, unit="/min", measured_at=at(minute),
        original_value=value, original_unit="/min", **extra,
    )  # fmt: skip


def patient(conn: psycopg.Connection[Any], mrn: str) -> UUID:
    row = roster.create_patient(conn, clinic_id="default", mrn=mrn, display_name="P", fhir_patient_id=None)
    patient_id: UUID = row["id"]
    return patient_id


def device(conn: psycopg.Connection[Any], device_id: str, *assignments: tuple[UUID | None, float]) -> None:
    """Register ``device_id`` with its assignments: (patient or None for unassigned, since minute)."""
    roster.create_device(
        conn, device_id=device_id, clinic_id="default", type_="pulse_oximeter", manufacturer=None,
        model=None, serial=None,
    )  # fmt: skip
    for patient_id, minute in assignments:
        roster.assign_device(conn, device_id=device_id, patient_id=patient_id, since=at(minute))


def enrol(pool: ConnectionPool, device_id: str, *, since: float = -60) -> UUID:
    """A patient with ``device_id`` assigned since ``since`` minutes (before T0 by default)."""
    with pool.connection() as conn, conn.transaction():
        patient_id = patient(conn, f"MRN-{device_id}")
        device(conn, device_id, (patient_id, since))
    return patient_id


def new_rows(conn: psycopg.Connection[Any]) -> list[tuple[Key, UUID]]:
    """What ``reading_new`` holds (read in the caller's transaction: it is emptied at commit)."""
    rows = conn.execute(
        f"SELECT device_id, metric, measured_at, patient_id FROM {NEW_READINGS} ORDER BY idx"
    ).fetchall()
    return [((d, m, t), p) for d, m, t, p in rows]


def stored(pool: ConnectionPool) -> dict[Key, tuple[float, UUID]]:
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT device_id, metric, measured_at, value, patient_id FROM readings"
        ).fetchall()
    return {(d, m, t): (v, p) for d, m, t, v, p in rows}


def inserted(patient_id: UUID) -> InsertResult:
    return InsertResult(InsertStatus.INSERTED, patient_id)


DUPLICATE = InsertResult(InsertStatus.DUPLICATE, None)
UNASSIGNED = InsertResult(InsertStatus.UNASSIGNED, None)
UNKNOWN_DEVICE = InsertResult(InsertStatus.UNKNOWN_DEVICE, None)


def test_a_batch_of_new_keys_is_stored_whole_and_noted_in_reading_new(pool: ConnectionPool) -> None:
    p = enrol(pool, "dev-a")
    batch = [hr("dev-a", minute) for minute in range(5)]
    with pool.connection() as conn, conn.transaction():
        assert insert_readings(conn, batch, received_at=RECEIVED) == [inserted(p)] * 5
        assert new_rows(conn) == [(r.key, p) for r in batch]
    assert stored(pool) == {r.key: (70, p) for r in batch}
    with pool.connection() as conn:
        received = conn.execute("SELECT DISTINCT received_at FROM readings").fetchall()
    assert received == [(RECEIVED,)]


def test_keys_stored_already_are_duplicates_and_leave_reading_new(pool: ConnectionPool) -> None:
    p = enrol(pool, "dev-a")
    before = [hr("dev-a", 1, value=61), hr("dev-a", 3, value=63)]
    with pool.connection() as conn, conn.transaction():
        insert_readings(conn, before, received_at=RECEIVED)

    # The stored keys come again (with other values) between new ones and a reading of a device
    # nobody registered: the batch falls back to ON CONFLICT, and each result stays in its place.
    batch = [
        hr("dev-a", 0, value=80),
        hr("dev-a", 1, value=81),  # stored already
        hr("nobody", 1),
        hr("dev-a", 2, value=82),
        hr("dev-a", 3, value=83),  # stored already
        hr("dev-a", 4, value=84),
    ]
    with pool.connection() as conn, conn.transaction():
        results = insert_readings(conn, batch, received_at=RECEIVED)
        assert results == [inserted(p), DUPLICATE, UNKNOWN_DEVICE, inserted(p), DUPLICATE, inserted(p)]
        # the transaction goes on after the failed fast path (its savepoint was rolled back)
        assert new_rows(conn) == [(batch[i].key, p) for i in (0, 3, 5)]
        assert conn.execute(f"SELECT count(*) FROM {NEW_READINGS}").fetchone() == (3,)

    # The first values stay; the new keys are stored once.
    assert stored(pool) == {
        hr("dev-a", m).key: (v, p) for m, v in ((0, 80), (1, 61), (2, 82), (3, 63), (4, 84))
    }

    # Every key stored already: all duplicates, nothing new.
    with pool.connection() as conn, conn.transaction():
        assert insert_readings(conn, batch[:2], received_at=RECEIVED) == [DUPLICATE, DUPLICATE]
        assert new_rows(conn) == []


def test_each_reading_goes_to_the_assignment_at_its_measured_at(pool: ConnectionPool) -> None:
    """A device assigned at minute 0, unassigned at 10 (patient NULL), assigned to someone else
    at 20: the batch spans all of it, with a registered device never assigned and one unknown."""
    with pool.connection() as conn, conn.transaction():
        first, second = patient(conn, "MRN-1"), patient(conn, "MRN-2")
        device(conn, "dev-m", (first, 0), (None, 10), (second, 20))
        device(conn, "dev-idle")
    batch = [
        hr("dev-m", -1),  # before the first assignment
        hr("dev-m", 0),  # at it: the assignment starts at since
        hr("dev-m", 9.5),
        hr("dev-m", 10),  # unassigned from here
        hr("dev-m", 15),
        hr("dev-idle", 5),  # registered, never assigned
        hr("dev-m", 20),
        hr("dev-m", 600),
        hr("dev-unknown", 5),  # not registered
    ]
    with pool.connection() as conn, conn.transaction():
        results = insert_readings(conn, batch, received_at=RECEIVED)
        assert results == [
            UNASSIGNED, inserted(first), inserted(first), UNASSIGNED, UNASSIGNED, UNASSIGNED,
            inserted(second), inserted(second), UNKNOWN_DEVICE,
        ]  # fmt: skip
        assert new_rows(conn) == [
            (batch[1].key, first), (batch[2].key, first), (batch[6].key, second), (batch[7].key, second),
        ]  # fmt: skip
    assert stored(pool) == {
        batch[1].key: (70, first), batch[2].key: (70, first),
        batch[6].key: (70, second), batch[7].key: (70, second),
    }  # fmt: skip


def test_a_second_call_in_the_transaction_leaves_only_its_own_rows(pool: ConnectionPool) -> None:
    p = enrol(pool, "dev-a", since=0)
    first = [hr("dev-a", 1), hr("dev-a", 2)]
    second = [hr("dev-a", 3)]
    with pool.connection() as conn, conn.transaction():
        insert_readings(conn, first, received_at=RECEIVED)
        assert new_rows(conn) == [(r.key, p) for r in first]
        assert insert_readings(conn, second, received_at=RECEIVED) == [inserted(p)]
        assert new_rows(conn) == [(second[0].key, p)]
        # the fallback too: a key of the first call again, and a new one
        third = [hr("dev-a", 1), hr("dev-a", 4)]
        assert insert_readings(conn, third, received_at=RECEIVED) == [DUPLICATE, inserted(p)]
        assert new_rows(conn) == [(third[1].key, p)]
        # nothing to store (unassigned before minute 0): nothing new
        assert insert_readings(conn, [hr("dev-a", -5)], received_at=RECEIVED) == [UNASSIGNED]
        assert new_rows(conn) == []
        insert_readings(conn, [hr("dev-a", 5)], received_at=RECEIVED)
        assert insert_readings(conn, [], received_at=RECEIVED) == []
        assert new_rows(conn) == []
    assert sorted(stored(pool)) == [hr("dev-a", m).key for m in (1, 2, 3, 4, 5)]


def test_status_source_gateway_and_device_time_are_stored(pool: ConnectionPool) -> None:
    p = enrol(pool, "dev-a")
    full = hr(
        "dev-a", 1, status=("irregular_pulse", "motion"), source="ble", gateway_id="hub-1",
        device_time=at(1) - timedelta(seconds=3),
    )  # fmt: skip
    plain = hr("dev-a", 2)
    columns = "status, source, gateway_id, device_time, patient_id"
    with pool.connection() as conn, conn.transaction():
        assert insert_readings(conn, [full, plain], received_at=RECEIVED) == [inserted(p)] * 2
        # reading_new may leave an empty status NULL (hooks that copy it coalesce)
        noted = conn.execute(
            f"SELECT coalesce(status, '{{}}'), source, gateway_id, device_time, patient_id"
            f" FROM {NEW_READINGS} ORDER BY idx"
        ).fetchall()
    with pool.connection() as conn:
        rows = conn.execute(f"SELECT {columns} FROM readings ORDER BY measured_at").fetchall()
    expected = [
        (["irregular_pulse", "motion"], "ble", "hub-1", at(1) - timedelta(seconds=3), p),
        ([], None, None, None, p),
    ]
    assert rows == expected
    assert noted == expected

    # The same through the fallback after a unique violation (one key stored already).
    later = hr("dev-a", 3, status=("low_perfusion",), source="gateway", gateway_id="hub-2", device_time=at(3))
    with pool.connection() as conn, conn.transaction():
        assert insert_readings(conn, [full, later], received_at=RECEIVED) == [DUPLICATE, inserted(p)]
    with pool.connection() as conn:
        row = conn.execute(f"SELECT {columns} FROM readings WHERE measured_at = %s", (at(3),)).fetchone()
    assert row == (["low_perfusion"], "gateway", "hub-2", at(3), p)

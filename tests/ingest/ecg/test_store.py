"""Storing and loading ECG strips in a real database."""

from __future__ import annotations

from array import array
from datetime import timedelta
from uuid import UUID

from psycopg_pool import ConnectionPool

from devices.ecg import EcgStrip
from ingest.ecg.store import insert_strip, list_strips, load_strip
from ingest.store.readings import InsertStatus
from tests.support.mqtt_ingest import BASE, register


def strip(device_id: str, offset_s: int = 0, **extra: object) -> EcgStrip:
    leads = {"I": array("h", [1, -2, 3]), "II": array("h", [32767, -32768, 0])}
    return EcgStrip(device_id, BASE + timedelta(seconds=offset_s), 300, leads, "sinus_rhythm")


def test_a_strip_is_stored_once_and_loads_back_whole(pool: ConnectionPool) -> None:
    patient = register(pool, ["ecg-store-1"])
    first = strip("ecg-store-1")
    with pool.connection() as conn:
        stored = insert_strip(conn, first, received_at=BASE)
        again = insert_strip(conn, first, received_at=BASE)
        loaded = load_strip(conn, first.id)
        listed = list_strips(conn, UUID(patient))
    assert stored.status is InsertStatus.INSERTED
    assert str(stored.patient_id) == patient and stored.clinic_id == "default"
    assert again.status is InsertStatus.DUPLICATE
    assert loaded is not None and loaded.strip == first
    assert loaded.id == first.id and str(loaded.patient_id) == patient
    assert [(s.id, s.leads, s.sample_count) for s in listed] == [(first.id, ("I", "II"), 3)]
    assert listed[0].duration_s == 0.01


def test_unknown_and_unassigned_devices_are_told_apart(pool: ConnectionPool) -> None:
    register(pool, ["ecg-store-2"])
    with pool.connection() as conn:
        unknown = insert_strip(conn, strip("nobody"), received_at=BASE)
        early = insert_strip(conn, strip("ecg-store-2", offset_s=-3 * 86400), received_at=BASE)
        missing = load_strip(conn, UUID(int=0))
    assert unknown.status is InsertStatus.UNKNOWN_DEVICE
    assert early.status is InsertStatus.UNASSIGNED
    assert missing is None


def test_list_honours_since_and_until(pool: ConnectionPool) -> None:
    patient = UUID(register(pool, ["ecg-store-3"]))
    strips = [strip("ecg-store-3", offset_s=60 * i) for i in range(3)]
    with pool.connection() as conn:
        for s in strips:
            insert_strip(conn, s, received_at=BASE)
        middle = list_strips(conn, patient, since=strips[1].measured_at, until=strips[2].measured_at)
        newest_first = list_strips(conn, patient)
    assert [s.id for s in middle] == [strips[1].id]
    assert [s.id for s in newest_first] == [s.id for s in reversed(strips)]


def test_samples_are_one_compact_block(pool: ConnectionPool) -> None:
    register(pool, ["ecg-store-4"])
    one = strip("ecg-store-4")
    with pool.connection() as conn:
        insert_strip(conn, one, received_at=BASE)
        row = conn.execute("SELECT octet_length(samples), leads FROM ecg_strips").fetchone()
    assert row == (2 * 2 * 3, ["I", "II"])

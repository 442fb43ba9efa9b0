"""One outbox, several destinations: a row per item and destination, each destination claiming
only its own rows through its own reader, and items kept in tables of their own (strips, alerts)
enqueued by reference."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from fhir_export.outbox import Delivered
from ingest.export.destinations import FHIR, HL7, reading_destinations
from ingest.export.outbox import (
    WAITING_REASON,
    ClaimedRow,
    NewItem,
    PgOutbox,
    Unlinked,
    enqueue_items,
    fhir_reader,
)
from ingest.settings import Settings
from tests.support.export import T0, Home, bp, hr, make_home


def _describe(conn: psycopg.Connection[Any], row: ClaimedRow) -> tuple[str, str, tuple[str, ...], str]:
    return (row.kind, row.patient.mrn, tuple(r.metric for r in row.readings), row.device.device_id)


def test_every_reading_and_panel_gets_a_row_per_destination_and_only_fhir_waits(pool: ConnectionPool) -> None:
    home = make_home(pool, fhir_patient_id=None, destinations=(FHIR, HL7))
    home.ingest([hr(70, minute=0), *bp(128, 84, 98, minute=2)])
    rows = home.rows()
    assert sorted((r["destination"], r["kind"], r["status"]) for r in rows) == [
        ("fhir", "bp_panel", "waiting"),
        ("fhir", "reading", "waiting"),
        ("hl7", "bp_panel", "pending"),
        ("hl7", "reading", "pending"),
    ]
    # A late component joins each destination's own panel row.
    home.ingest([bp(128, 84, 98, minute=2)[0]])
    assert len(home.rows()) == 4


def test_each_destination_claims_its_own_rows_with_its_own_reader(pool: ConnectionPool) -> None:
    home = make_home(pool, fhir_patient_id=None, destinations=(FHIR, HL7))
    home.ingest([hr(70, minute=0), *bp(128, 84, 98, minute=2)])
    hl7 = PgOutbox(pool, worker="hl7", destination=HL7, reader=_describe)
    with hl7.claim(10) as claim:
        assert sorted(i.item for i in claim.items) == [
            ("bp_panel", "MRN-1", ("systolic_bp", "diastolic_bp", "mean_arterial_pressure"), home.device_id),
            ("reading", "MRN-1", ("heart_rate",), home.device_id),
        ]
        claim.mark_sent([Delivered(i.id, f"MSG-{i.id}", True) for i in claim.items])
    # The FHIR rows wait for the link, untouched by the HL7 claim.
    assert {r["status"] for r in home.rows(destination="fhir")} == {"waiting"}
    assert {r["fhir_reference"][:4] for r in home.rows(destination="hl7")} == {"MSG-"}
    with PgOutbox(pool, worker="fhir").claim(10) as claim:
        assert claim.items == []


def test_a_reader_can_make_a_row_wait_or_park_it(pool: ConnectionPool) -> None:
    home = make_home(pool, fhir_patient_id="pat-1", destinations=(HL7,))
    home.ingest([hr(70, minute=0), hr(71, minute=1)])

    def picky(conn: psycopg.Connection[Any], row: ClaimedRow) -> str:
        if row.readings[0].value == 70:
            raise Unlinked("the interface engine does not know this MRN yet")
        raise ValueError("no OBX mapping for this metric")

    with PgOutbox(pool, worker="w", destination=HL7, reader=picky).claim(10) as claim:
        assert claim.items == []
    first, second = home.rows()
    assert (first["status"], first["last_error"]) == (
        "waiting",
        "the interface engine does not know this MRN yet",
    )
    assert second["status"] == "failed" and "no OBX mapping" in second["last_error"]


def _item(home: Home, destination: str, ref: str = "strip-1") -> NewItem:
    return NewItem(home.patient_id, home.device_id, destination, "ecg", ref, T0)


def test_items_kept_elsewhere_are_enqueued_once_per_destination(pool: ConnectionPool) -> None:
    home = make_home(pool, fhir_patient_id=None)
    with pool.connection() as conn, conn.transaction():
        assert enqueue_items(conn, [_item(home, FHIR), _item(home, "dicom")]) == 2
        assert enqueue_items(conn, [_item(home, FHIR), _item(home, "dicom")]) == 0
    rows = home.rows()
    assert sorted(
        (r["destination"], r["kind"], r["item_ref"], r["status"], r["last_error"]) for r in rows
    ) == [
        ("dicom", "ecg", "strip-1", "pending", None),
        ("fhir", "ecg", "strip-1", "waiting", WAITING_REASON),
    ]
    loaded = PgOutbox(
        pool, worker="w", destination="dicom", reader=lambda c, r: (r.kind, r.item_ref, r.readings)
    )
    with loaded.claim(10) as claim:
        assert [i.item for i in claim.items] == [("ecg", "strip-1", ())]
    with pytest.raises(ValueError, match="kind"):
        NewItem(home.patient_id, home.device_id, FHIR, "reading", "x", T0).as_json()


def test_the_fhir_reader_parks_an_item_row_whose_item_is_gone(pool: ConnectionPool) -> None:
    home = make_home(pool, fhir_patient_id="pat-1")
    with pool.connection() as conn, conn.transaction():
        enqueue_items(conn, [_item(home, FHIR)])
    with PgOutbox(pool, worker="w", reader=fhir_reader).claim(10) as claim:
        assert claim.items == []
    (row,) = home.rows()
    assert row["status"] == "failed" and row["last_error"].startswith("stored row is unreadable")


def test_readings_go_to_fhir_always_and_other_destinations_when_configured() -> None:
    assert reading_destinations(Settings(_env_file=None)) == (FHIR,)  # type: ignore[call-arg]

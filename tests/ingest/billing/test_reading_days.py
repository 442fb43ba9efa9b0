"""The days with readings (``reading_days``, migration 0018) that the report counts from: written
by billing's hook in the ingest transaction, filled by the migration, rebuilt when a clinic's time
zone changes, moved with a patient merge, kept when readings age out. Each test also checks that
the report says what it said when it counted the readings themselves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from ingest.billing.episodes import end_monitoring, list_episodes, start_episode
from ingest.billing.months import parse_month
from ingest.billing.reading_days import ReadingDaysWriter
from ingest.billing.report import build_report
from ingest.db.migrate import available_migrations
from ingest.hl7 import adt_store
from ingest.pipeline import Envelope, Pipeline
from ingest.security.retention import delete_expired_batch
from ingest.store import roster
from tests.support import billing as bt
from tests.support.db import database_before

NY, BERLIN = "America/New_York", "Europe/Berlin"


def _days(conn: psycopg.Connection[Any], patient: UUID) -> list[tuple[str, datetime, datetime]]:
    rows = conn.execute(
        "SELECT local_date, first_at, last_at FROM reading_days WHERE patient_id = %s ORDER BY 1", (patient,)
    ).fetchall()
    return [(d.isoformat(), f, la) for d, f, la in rows]


def _periods(conn: psycopg.Connection[Any], clinic: str, tz: str, month: str) -> dict[str, list[Any]]:
    report = build_report(
        conn, clinic_id=clinic, timezone=tz, month=parse_month(month), today=date(2030, 1, 1)
    )
    return {
        p.mrn: [(x.start.isoformat(), x.end.isoformat(), x.days) for x in p.periods]
        + [c.code for c in p.codes]
        for p in report.patients
    }


def _device(conn: psycopg.Connection[Any], clinic: str, device: str, patient: UUID, since: datetime) -> None:
    roster.create_device(
        conn, device_id=device, clinic_id=clinic, type_="hr", manufacturer=None, model=None, serial=None
    )
    roster.assign_device(conn, device_id=device, patient_id=patient, since=since)


def _envelope(device: str, readings: list[dict[str, Any]]) -> Envelope:
    body = json.dumps({"readings": readings}).encode()
    return Envelope("http", body, datetime.now(UTC), device_id=device)


def _hr(at: datetime, value: float = 70) -> dict[str, Any]:
    return {"metric": "heart_rate", "value": value, "unit": "/min", "measured_at": at.isoformat()}


def test_the_hook_records_local_days_once_extends_them_and_skips_dead_letters(pool: ConnectionPool) -> None:
    pipeline = Pipeline(hooks=[ReadingDaysWriter()])
    with pool.connection() as conn:
        bt.clinic(conn, "ny", NY)
        pid = bt.patient(conn, "ny", "P1")
        _device(conn, "ny", "hr-1", pid, bt.local(NY, 2026, 3, 1, 8))
    # 23:30 and 00:30 local are two New York days though one UTC day; 900/min is dead-lettered
    late, early = bt.local(NY, 2026, 3, 2, 23, 30), bt.local(NY, 2026, 3, 3, 0, 30)
    batch = [_hr(late), _hr(early), _hr(bt.local(NY, 2026, 3, 4, 12), 900), _hr(bt.local(NY, 2026, 3, 3, 9))]
    for _ in range(2):  # the second time every reading is a duplicate
        with pool.connection() as conn, conn.transaction():
            [outcome] = pipeline.process(conn, [_envelope("hr-1", batch)], collect=[])
    assert outcome.accepted == 0 and outcome.duplicates == 3 and len(outcome.rejected) == 1
    with pool.connection() as conn:
        assert _days(conn, pid) == [
            ("2026-03-02", late, late),
            ("2026-03-03", early, bt.local(NY, 2026, 3, 3, 9)),
        ]
        # a reading before the day's first rewrites the row (first_at and last_at); one after its
        # last alone does not: last_at is already after the episode's start
        with conn.transaction():
            pipeline.process(
                conn,
                [_envelope("hr-1", [_hr(bt.local(NY, 2026, 3, 3, 0, 5)), _hr(bt.local(NY, 2026, 3, 3, 18))])],
                collect=[],
            )
        assert _days(conn, pid)[1] == (
            "2026-03-03",
            bt.local(NY, 2026, 3, 3, 0, 5),
            bt.local(NY, 2026, 3, 3, 18),
        )
        with conn.transaction():
            pipeline.process(conn, [_envelope("hr-1", [_hr(bt.local(NY, 2026, 3, 3, 18, 30))])], collect=[])
        assert _days(conn, pid)[1][2] == bt.local(NY, 2026, 3, 3, 18)
        assert _periods(conn, "ny", NY, "2026-03")["P1"] == [
            ("2026-03-01", "2026-03-30", 2),
            "99453",
            "99445",
        ]
        # a new episode starts at 19:00 on a day whose readings so far were all before it: the next
        # reading after the start moves last_at (once), and the day counts for the new episode
        start_episode(conn, pid, bt.local(NY, 2026, 3, 3, 19))
        for hour in (20, 21):
            with conn.transaction():
                pipeline.process(conn, [_envelope("hr-1", [_hr(bt.local(NY, 2026, 3, 3, hour))])], collect=[])
        assert _days(conn, pid)[1][2] == bt.local(NY, 2026, 3, 3, 20)
        assert _periods(conn, "ny", NY, "2026-03")["P1"] == [
            ("2026-03-01", "2026-03-03", 2),
            "99453",
            "99445",
        ]
        assert _periods(conn, "ny", NY, "2026-04")["P1"] == [("2026-03-03", "2026-04-01", 1)]
        # the same when the row's last_at cannot tell (the readings are asked)
        conn.execute("UPDATE reading_days SET last_at = first_at WHERE patient_id = %s", (pid,))
        assert _periods(conn, "ny", NY, "2026-04")["P1"] == [("2026-03-03", "2026-04-01", 1)]


def test_a_time_zone_change_redates_the_clinics_days_in_the_same_transaction(pool: ConnectionPool) -> None:
    with pool.connection() as conn:
        bt.clinic(conn, "c1", NY)
        bt.clinic(conn, "other", NY)
        pid = bt.monitored(conn, "c1", "P1", bt.local(BERLIN, 2026, 2, 28, 12))
        other = bt.monitored(conn, "other", "P2", bt.local(NY, 2026, 2, 28, 12))
        # 20:00 New York is 02:00 the next day in Berlin: 3 New York days, 4 Berlin days
        instants = [bt.local(NY, 2026, 3, d, 20) for d in (1, 2, 3)] + [bt.local(NY, 2026, 3, 2, 12)]
        bt.readings(conn, pid, instants)
        bt.readings(conn, other, instants)
        assert [d for d, _, _ in _days(conn, pid)] == ["2026-03-01", "2026-03-02", "2026-03-03"]
        with conn.transaction():
            roster.update_clinic(conn, "c1", name=None, timezone=BERLIN)
            assert [d for d, _, _ in _days(conn, pid)] == ["2026-03-02", "2026-03-03", "2026-03-04"]
            # the name alone changes nothing
            roster.update_clinic(conn, "c1", name="renamed", timezone=None)
        assert [d for d, _, _ in _days(conn, pid)] == ["2026-03-02", "2026-03-03", "2026-03-04"]
        assert [d for d, _, _ in _days(conn, other)] == ["2026-03-01", "2026-03-02", "2026-03-03"]
        assert _periods(conn, "c1", BERLIN, "2026-03")["P1"] == [
            ("2026-02-28", "2026-03-29", 3),
            "99453",
            "99445",
        ]


def test_a_merge_moves_days_and_joins_episodes_the_explicit_one_included(pool: ConnectionPool) -> None:
    with pool.connection() as conn:
        bt.clinic(conn, "c1", "UTC")
        survivor = bt.patient(conn, "c1", "KEEP")
        _device(conn, "c1", "dev-s", survivor, bt.local("UTC", 2026, 3, 1, 8))  # episode from Mar 1
        merged = bt.monitored(conn, "c1", "GONE", bt.local("UTC", 2026, 3, 5, 8))  # explicit, Mar 5
        later = bt.monitored(conn, "c1", "LATER", bt.local("UTC", 2026, 2, 1, 8))
        end_monitoring(conn, later, bt.local("UTC", 2026, 2, 10, 8))
        start_episode(conn, later, bt.local("UTC", 2026, 4, 10, 8))
        bt.readings(conn, survivor, bt.daily("UTC", date(2026, 3, 1), 10))  # Mar 1-10
        bt.readings(conn, merged, bt.daily("UTC", date(2026, 3, 8), 10, hour=15))  # Mar 8-17
        bt.readings(conn, later, bt.daily("UTC", date(2026, 2, 2), 3))
        with conn.transaction():
            adt_store.merge(conn, "c1", "KEEP", "GONE", "test")
        assert conn.execute(
            "SELECT count(*) FROM reading_days WHERE patient_id = %s", (merged,)
        ).fetchone() == (0,)
        days = _days(conn, survivor)
        assert [d for d, _, _ in days] == [f"2026-03-{d:02d}" for d in range(1, 18)]
        assert days[8] == ("2026-03-09", bt.local("UTC", 2026, 3, 9, 9), bt.local("UTC", 2026, 3, 9, 15))
        [episode] = list_episodes(conn, survivor)
        assert episode["started_at"] == bt.local("UTC", 2026, 3, 1, 8) and episode["ended_at"] is None
        assert list_episodes(conn, merged) == []
        report = _periods(conn, "c1", "UTC", "2026-03")
        assert report == {"KEEP": [("2026-03-01", "2026-03-30", 17), "99453", "99454"]}
        # two episodes apart stay apart; an open one and one ended before it do not join
        with conn.transaction():
            adt_store.merge(conn, "c1", "KEEP", "LATER", "test")
        spans = [(e["started_at"].date().isoformat(), e["ended_at"]) for e in list_episodes(conn, survivor)]
        assert spans == [("2026-02-01", bt.local("UTC", 2026, 2, 10, 8)), ("2026-03-01", None)]
        # the survivor's device moved back and forth opens and ends nothing more
        assert len(list_episodes(conn, survivor)) == 2


def test_days_are_kept_when_readings_age_out_and_the_billed_month_stays(pool: ConnectionPool) -> None:
    with pool.connection() as conn:
        bt.clinic(conn, "c1", NY)
        pid = bt.monitored(conn, "c1", "P1", bt.local(NY, 2026, 3, 1, 8))
        # episode starts and ends on Mar 20 with readings only before and after it: not a day
        short = bt.monitored(conn, "c1", "P2", bt.local(NY, 2026, 3, 20, 10))
        end_monitoring(conn, short, bt.local(NY, 2026, 3, 20, 14))
        bt.readings(conn, short, [bt.local(NY, 2026, 3, 20, 9), bt.local(NY, 2026, 3, 20, 15)])
        bt.readings(conn, pid, bt.daily(NY, date(2026, 3, 1), 20, per_day=3))
        before = _periods(conn, "c1", NY, "2026-03")
        assert before["P1"] == [("2026-03-01", "2026-03-30", 20), "99453", "99454"]
        assert before["P2"] == [("2026-03-20", "2026-03-20", 0)]
        with conn.transaction():
            while delete_expired_batch(conn, datetime(2026, 4, 1, tzinfo=UTC), batch=7):
                pass
        assert conn.execute("SELECT count(*) FROM readings").fetchone() == (0,)
        after = _periods(conn, "c1", NY, "2026-03")
        assert after["P1"] == before["P1"]
        # a later time-zone change re-dates the aged-out days by their first and last instants, and
        # the readings still stored
        bt.readings(conn, pid, [bt.local(NY, 2026, 4, 2, 21)])
        roster.update_clinic(conn, "c1", name=None, timezone=BERLIN)
        assert [d for d, _, _ in _days(conn, pid)][-3:] == ["2026-03-19", "2026-03-20", "2026-04-03"]
        assert _periods(conn, "c1", BERLIN, "2026-03")["P1"] == before["P1"]


@pytest.fixture
def before_0018() -> Iterator[str]:
    with database_before(18) as url:
        yield url


def test_the_migration_fills_days_from_stored_readings_in_each_clinics_zone(before_0018: str) -> None:
    [days_migration] = [m for m in available_migrations() if m.version == 18]
    with psycopg.connect(before_0018, autocommit=True) as conn:
        ids = {}
        for clinic, tz in (("ny", NY), ("be", BERLIN)):
            bt.clinic(conn, clinic, tz)
            ids[clinic] = bt.patient(conn, clinic, "P")
            conn.execute(
                "INSERT INTO readings (device_id, metric, measured_at, patient_id, value, unit,"
                " original_value, original_unit) SELECT 'd-' || %s, m, t, %s, 70, '/min', 70, '/min'"
                " FROM unnest(%s::text[]) m, unnest(%s::timestamptz[]) t",
                (
                    clinic,
                    ids[clinic],
                    ["heart_rate", "spo2"],
                    [datetime(2026, 3, 1, 3, tzinfo=UTC) + timedelta(hours=h) for h in (0, 1, 24)],
                ),
            )
        conn.execute(days_migration.sql)
        assert [(d, f.hour, la.hour) for d, f, la in _days(conn, ids["ny"])] == [
            ("2026-02-28", 3, 4),  # 22:00 and 23:00 New York
            ("2026-03-01", 3, 3),
        ]
        assert [(d, f.hour, la.hour) for d, f, la in _days(conn, ids["be"])] == [
            ("2026-03-01", 3, 4),
            ("2026-03-02", 3, 3),
        ]

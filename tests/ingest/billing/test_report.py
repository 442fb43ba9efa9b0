"""The monthly report against the contract's rules at every edge, counted by the real query over
readings stored in a real database (docs/contract/billing.md; docs/billing.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from ingest.billing.episodes import end_monitoring, start_episode
from ingest.billing.months import parse_month
from ingest.billing.report import MonthReport, build_report, report_csv, report_json
from tests.support import billing as bt

D = date
NY, BERLIN, UTC = "America/New_York", "Europe/Berlin", "UTC"
Setup = Callable[[psycopg.Connection[Any], UUID, str], None]


def _report(conn: psycopg.Connection[Any], clinic: str, tz: str, month: str) -> MonthReport:
    return build_report(conn, clinic_id=clinic, timezone=tz, month=parse_month(month), today=D(2030, 1, 1))


def _codes(report: MonthReport) -> list[tuple[str, int, str, str]]:
    [p] = report.patients
    return [(c.code, c.units, c.period_start.isoformat(), c.period_end.isoformat()) for c in p.codes]


def _periods(report: MonthReport) -> list[tuple[str, str, int]]:
    [p] = report.patients
    return [(x.start.isoformat(), x.end.isoformat(), x.days) for x in p.periods]


@dataclass(frozen=True)
class DayCase:
    name: str
    tz: str
    start: tuple[int, int, int, int]  # local y, m, d, hour of the episode start
    readings: Callable[[str], list[Any]]  # tz -> instants
    month: str
    periods: list[tuple[str, str, int]]
    codes: list[tuple[str, int, str, str]]


MAR_P1 = ("2026-03-01", "2026-03-30")


def _d(tz: str, *days: tuple[int, int, int, int, int]) -> list[Any]:
    return [bt.local(tz, y, m, d, h, mi) for (y, m, d, h, mi) in days]


DAY_CASES = [
    DayCase(
        "no readings: the period is listed with 0 days",
        UTC,
        (2026, 3, 1, 0),
        lambda tz: [],
        "2026-03",
        [(*MAR_P1, 0)],
        [],
    ),
    DayCase(
        "1 day",
        UTC,
        (2026, 3, 1, 0),
        lambda tz: bt.daily(tz, D(2026, 3, 5), 1),
        "2026-03",
        [(*MAR_P1, 1)],
        [],
    ),
    DayCase(
        "2 days",
        UTC,
        (2026, 3, 1, 0),
        lambda tz: bt.daily(tz, D(2026, 3, 5), 2),
        "2026-03",
        [(*MAR_P1, 2)],
        [("99453", 1, *MAR_P1), ("99445", 1, *MAR_P1)],
    ),
    DayCase(
        "15 days",
        UTC,
        (2026, 3, 1, 0),
        lambda tz: bt.daily(tz, D(2026, 3, 1), 15),
        "2026-03",
        [(*MAR_P1, 15)],
        [("99453", 1, *MAR_P1), ("99445", 1, *MAR_P1)],
    ),
    DayCase(
        "16 days",
        UTC,
        (2026, 3, 1, 0),
        lambda tz: bt.daily(tz, D(2026, 3, 1), 16),
        "2026-03",
        [(*MAR_P1, 16)],
        [("99453", 1, *MAR_P1), ("99454", 1, *MAR_P1)],
    ),
    DayCase(
        "several readings a day count once",
        UTC,
        (2026, 3, 1, 0),
        lambda tz: bt.daily(tz, D(2026, 3, 1), 15, per_day=6),
        "2026-03",
        [(*MAR_P1, 15)],
        [("99453", 1, *MAR_P1), ("99445", 1, *MAR_P1)],
    ),
    DayCase(
        "all 30 days; day 31 is the next period's",
        UTC,
        (2026, 3, 1, 0),
        lambda tz: bt.daily(tz, D(2026, 3, 1), 31),
        "2026-03",
        [(*MAR_P1, 30)],
        [("99453", 1, *MAR_P1), ("99454", 1, *MAR_P1)],
    ),
    DayCase(
        "readings before the episode start do not count (same local day)",
        UTC,
        (2026, 3, 1, 10),
        lambda tz: _d(tz, (2026, 3, 1, 9, 0), (2026, 2, 27, 9, 0), (2026, 3, 2, 9, 0)),
        "2026-03",
        [(*MAR_P1, 1)],
        [],
    ),
    DayCase(
        "local midnight: 23:59:59 and 00:00:00 are two days (one UTC day)",
        NY,
        (2026, 3, 1, 0),
        lambda tz: [bt.local(tz, 2026, 3, 5, 23, 59, 59), bt.local(tz, 2026, 3, 6, 0, 0, 0)],
        "2026-03",
        [(*MAR_P1, 2)],
        [("99453", 1, *MAR_P1), ("99445", 1, *MAR_P1)],
    ),
    DayCase(
        "local evening readings on 16 days, all on the next UTC day",
        NY,
        (2026, 3, 1, 0),
        lambda tz: bt.daily(tz, D(2026, 3, 1), 16, hour=22),
        "2026-03",
        [(*MAR_P1, 16)],
        [("99453", 1, *MAR_P1), ("99454", 1, *MAR_P1)],
    ),
    DayCase(
        "DST starts in New York: noon on the 8th and 00:30 EDT on the 9th are two days",
        NY,
        (2026, 3, 1, 0),
        lambda tz: _d(tz, (2026, 3, 8, 12, 0), (2026, 3, 9, 0, 30)),
        "2026-03",
        [(*MAR_P1, 2)],
        [("99453", 1, *MAR_P1), ("99445", 1, *MAR_P1)],
    ),
    DayCase(
        "DST starts in New York: 01:30 EST and 03:30 EDT on the 8th are one day",
        NY,
        (2026, 3, 1, 0),
        lambda tz: _d(tz, (2026, 3, 8, 1, 30), (2026, 3, 8, 3, 30), (2026, 3, 8, 23, 59)),
        "2026-03",
        [(*MAR_P1, 1)],
        [],
    ),
    DayCase(
        "DST starts in Berlin: noon on the 29th and 00:30 CEST on the 30th are two days",
        BERLIN,
        (2026, 3, 1, 0),
        lambda tz: _d(tz, (2026, 3, 29, 12, 0), (2026, 3, 30, 0, 30)),
        "2026-03",
        [(*MAR_P1, 2)],
        [("99453", 1, *MAR_P1), ("99445", 1, *MAR_P1)],
    ),
    DayCase(
        "DST ends in New York: 23:30 on Nov 1 and 00:30 EST on Nov 2 are two days",
        NY,
        (2026, 10, 15, 0),
        lambda tz: _d(tz, (2026, 11, 1, 23, 30), (2026, 11, 2, 0, 30)),
        "2026-11",
        [("2026-10-15", "2026-11-13", 2)],
        [("99453", 1, "2026-10-15", "2026-11-13"), ("99445", 1, "2026-10-15", "2026-11-13")],
    ),
    DayCase(
        "DST ends in Berlin: the repeated hour on Oct 25 is one day",
        BERLIN,
        (2026, 10, 1, 0),
        lambda tz: _d(tz, (2026, 10, 25, 2, 30), (2026, 10, 25, 23, 30), (2026, 10, 26, 0, 5)),
        "2026-10",
        [("2026-10-01", "2026-10-30", 2)],
        [("99453", 1, "2026-10-01", "2026-10-30"), ("99445", 1, "2026-10-01", "2026-10-30")],
    ),
    DayCase(
        "a period straddling the month end is not in the month it starts in",
        UTC,
        (2026, 3, 20, 8),
        lambda tz: bt.daily(tz, D(2026, 3, 20), 20),
        "2026-03",
        [],
        [],
    ),
    DayCase(
        "... and belongs to the month it ends in",
        UTC,
        (2026, 3, 20, 8),
        lambda tz: bt.daily(tz, D(2026, 3, 20), 20),
        "2026-04",
        [("2026-03-20", "2026-04-18", 20)],
        [("99453", 1, "2026-03-20", "2026-04-18"), ("99454", 1, "2026-03-20", "2026-04-18")],
    ),
    DayCase(
        "a 31-day month holds two period ends, each with its own supply code",
        UTC,
        (2026, 1, 31, 8),
        lambda tz: bt.daily(tz, D(2026, 1, 31), 20) + bt.daily(tz, D(2026, 3, 10), 3),
        "2026-03",
        [("2026-01-31", "2026-03-01", 20), ("2026-03-02", "2026-03-31", 3)],
        [
            ("99453", 1, "2026-01-31", "2026-03-01"),
            ("99454", 1, "2026-01-31", "2026-03-01"),
            ("99445", 1, "2026-03-02", "2026-03-31"),
        ],
    ),
    DayCase(
        "99453 comes once per episode: not again after an earlier period earned it",
        UTC,
        (2026, 1, 1, 8),
        lambda tz: bt.daily(tz, D(2026, 1, 5), 2) + bt.daily(tz, D(2026, 3, 10), 5),
        "2026-03",
        [("2026-01-31", "2026-03-01", 0), ("2026-03-02", "2026-03-31", 5)],
        [("99445", 1, "2026-03-02", "2026-03-31")],
    ),
    DayCase(
        "99453 waits for the first period with 2 days (an earlier one had 1)",
        UTC,
        (2026, 1, 1, 8),
        lambda tz: bt.daily(tz, D(2026, 1, 5), 1) + bt.daily(tz, D(2026, 3, 10), 5),
        "2026-03",
        [("2026-01-31", "2026-03-01", 0), ("2026-03-02", "2026-03-31", 5)],
        [("99453", 1, "2026-03-02", "2026-03-31"), ("99445", 1, "2026-03-02", "2026-03-31")],
    ),
]


@pytest.mark.parametrize("case", DAY_CASES, ids=[c.name for c in DAY_CASES])
def test_days_with_readings_and_supply_codes(pool: ConnectionPool, case: DayCase) -> None:
    with pool.connection() as conn:
        bt.clinic(conn, "c1", case.tz)
        pid = bt.monitored(conn, "c1", "M1", bt.local(case.tz, *case.start))
        bt.readings(conn, pid, case.readings(case.tz))
        report = _report(conn, "c1", case.tz, case.month)
    assert _periods(report) == case.periods
    assert _codes(report) == case.codes


MINUTE_CASES = [
    # entries (minutes, interactive) -> codes
    ([(9, True)], []),
    ([(10, True)], [("99470", 1)]),
    ([(5, True), (4, False), (1, False)], [("99470", 1)]),
    ([(19, True)], [("99470", 1)]),
    ([(20, True)], [("99457", 1)]),
    ([(39, True)], [("99457", 1)]),
    ([(40, True)], [("99457", 1), ("99458", 1)]),
    ([(59, True)], [("99457", 1), ("99458", 1)]),
    ([(60, True)], [("99457", 1), ("99458", 2)]),
    ([(30, False), (30, False)], []),  # minutes without an interactive entry earn nothing
    ([(240, True), (100, False)], [("99457", 1), ("99458", 16)]),
]


@pytest.mark.parametrize(("entries", "expected"), MINUTE_CASES, ids=[str(e) for e, _ in MINUTE_CASES])
def test_management_minutes_and_codes(
    pool: ConnectionPool, entries: list[tuple[int, bool]], expected: list[tuple[str, int]]
) -> None:
    with pool.connection() as conn:
        bt.clinic(conn, "c1", NY)
        pid = bt.monitored(conn, "c1", "M1", bt.local(NY, 2026, 2, 10, 9))
        for minutes, interactive in entries:
            bt.time_entry(conn, pid, minutes, interactive, bt.local(NY, 2026, 3, 14, 10))
        report = _report(conn, "c1", NY, "2026-03")
    [p] = report.patients
    assert p.minutes == sum(m for m, _ in entries)
    assert p.interactive == any(i for _, i in entries)
    management = [(c.code, c.units, c.period_start, c.period_end) for c in p.codes if c.days is None]
    assert management == [(code, units, D(2026, 3, 1), D(2026, 3, 31)) for code, units in expected]


def test_time_counts_in_the_clinic_local_month_and_deleted_entries_do_not(pool: ConnectionPool) -> None:
    with pool.connection() as conn:
        bt.clinic(conn, "c1", NY)
        pid = bt.monitored(conn, "c1", "M1", bt.local(NY, 2026, 2, 10, 9))
        bt.time_entry(conn, pid, 12, True, bt.local(NY, 2026, 3, 31, 23, 30))  # April 1 in UTC
        bt.time_entry(conn, pid, 30, True, bt.local(NY, 2026, 4, 1, 0, 10))  # April
        bt.time_entry(conn, pid, 7, False, bt.local(NY, 2026, 3, 1, 0, 0))  # first instant of March
        bt.time_entry(conn, pid, 50, True, bt.local(NY, 2026, 3, 15))
        conn.execute(
            "UPDATE clinician_time SET deleted_at = now(), deleted_by = gen_random_uuid() WHERE minutes = 50"
        )
        march, april = _report(conn, "c1", NY, "2026-03"), _report(conn, "c1", NY, "2026-04")
    assert (march.patients[0].minutes, april.patients[0].minutes) == (19, 30)
    assert [c.code for c in march.patients[0].codes if c.days is None] == ["99470"]


def test_two_episodes_each_count_their_own_readings_and_earn_their_own_setup(pool: ConnectionPool) -> None:
    with pool.connection() as conn:
        bt.clinic(conn, "c1", BERLIN)
        pid = bt.monitored(conn, "c1", "M1", bt.local(BERLIN, 2026, 3, 1, 8))
        end_monitoring(conn, pid, bt.local(BERLIN, 2026, 3, 10, 12))
        start_episode(conn, pid, bt.local(BERLIN, 2026, 3, 15, 8))
        bt.readings(conn, pid, bt.daily(BERLIN, D(2026, 3, 2), 2))  # episode 1: 2 days
        bt.readings(conn, pid, [bt.local(BERLIN, 2026, 3, 10, 13), bt.local(BERLIN, 2026, 3, 12)])  # none
        bt.readings(conn, pid, bt.daily(BERLIN, D(2026, 3, 15), 16))  # episode 2: 16 days
        march, april = _report(conn, "c1", BERLIN, "2026-03"), _report(conn, "c1", BERLIN, "2026-04")
    # the first episode's last period ends with the episode, in March
    assert _periods(march) == [("2026-03-01", "2026-03-10", 2)]
    assert _codes(march) == [
        ("99453", 1, "2026-03-01", "2026-03-10"),
        ("99445", 1, "2026-03-01", "2026-03-10"),
    ]
    assert march.patients[0].open_period is not None
    assert march.patients[0].open_period.start == D(2026, 3, 15)
    assert _periods(april) == [("2026-03-15", "2026-04-13", 16)]
    assert _codes(april) == [
        ("99453", 1, "2026-03-15", "2026-04-13"),
        ("99454", 1, "2026-03-15", "2026-04-13"),
    ]


def test_episodes_from_device_assignments_end_with_the_last_device(pool: ConnectionPool) -> None:
    from ingest.store import roster

    with pool.connection() as conn:
        bt.clinic(conn, "c1", UTC)
        pid = bt.patient(conn, "c1", "M1")
        roster.create_device(
            conn, device_id="cuff", clinic_id="c1", type_="bp", manufacturer=None, model=None, serial=None
        )
        roster.assign_device(conn, device_id="cuff", patient_id=pid, since=bt.local(UTC, 2026, 3, 3, 10))
        roster.assign_device(conn, device_id="cuff", patient_id=None, since=bt.local(UTC, 2026, 3, 20, 10))
        bt.readings(conn, pid, bt.daily(UTC, D(2026, 3, 3), 20, hour=9))  # the 3rd's is before the start
        report = _report(conn, "c1", UTC, "2026-03")
    assert _periods(report) == [("2026-03-03", "2026-03-20", 17)]
    assert [c[0] for c in _codes(report)] == ["99453", "99454"]


def test_patients_without_an_episode_in_the_month_and_other_clinics_are_not_listed(
    pool: ConnectionPool,
) -> None:
    with pool.connection() as conn:
        bt.clinic(conn, "c1", UTC)
        bt.clinic(conn, "c2", UTC)
        bt.patient(conn, "c1", "never-monitored")
        ended = bt.monitored(conn, "c1", "ended-in-january", bt.local(UTC, 2026, 1, 1))
        end_monitoring(conn, ended, bt.local(UTC, 2026, 1, 20))
        bt.monitored(conn, "c1", "starts-in-april", bt.local(UTC, 2026, 4, 1))
        bt.monitored(conn, "c2", "other-clinic", bt.local(UTC, 2026, 3, 1))
        listed = bt.monitored(conn, "c1", "listed", bt.local(UTC, 2026, 2, 20))
        report = _report(conn, "c1", UTC, "2026-03")
    assert [p.patient_id for p in report.patients] == [listed]


def test_json_and_csv_shapes(pool: ConnectionPool) -> None:
    with pool.connection() as conn:
        bt.clinic(conn, "c1", UTC)
        pid = bt.monitored(conn, "c1", "=MRN1", bt.local(UTC, 2026, 3, 1, 8))
        conn.execute("UPDATE patients SET display_name = 'Doe, Jane' WHERE id = %s", (pid,))
        bt.readings(conn, pid, bt.daily(UTC, D(2026, 3, 1), 16))
        bt.time_entry(conn, pid, 45, True, bt.local(UTC, 2026, 3, 20))
        quiet = bt.monitored(conn, "c1", "M2", bt.local(UTC, 2026, 3, 1, 8))
        report = _report(conn, "c1", UTC, "2026-03")
    body = report_json(report)
    assert body["month"] == "2026-03" and body["clinic"] == "c1"
    first = next(p for p in body["patients"] if p["patient_id"] == str(pid))
    assert first["periods"] == [{"start": "2026-03-01", "end": "2026-03-30", "days_with_readings": 16}]
    assert first["management_minutes"] == 45 and first["interactive"] is True
    assert first["codes"] == [
        {"code": "99453", "units": 1, "period_start": "2026-03-01", "period_end": "2026-03-30"},
        {"code": "99454", "units": 1, "period_start": "2026-03-01", "period_end": "2026-03-30"},
        {"code": "99457", "units": 1, "period_start": "2026-03-01", "period_end": "2026-03-31"},
        {"code": "99458", "units": 1, "period_start": "2026-03-01", "period_end": "2026-03-31"},
    ]
    second = next(p for p in body["patients"] if p["patient_id"] == str(quiet))
    assert second["codes"] == [] and second["management_minutes"] == 0
    assert report_csv(report).split("\r\n") == [
        "mrn,display_name,code,units,period_start,period_end,days_with_readings,management_minutes",
        '\'=MRN1,"Doe, Jane",99453,1,2026-03-01,2026-03-30,16,45',
        '\'=MRN1,"Doe, Jane",99454,1,2026-03-01,2026-03-30,16,45',
        '\'=MRN1,"Doe, Jane",99457,1,2026-03-01,2026-03-31,,45',
        '\'=MRN1,"Doe, Jane",99458,1,2026-03-01,2026-03-31,,45',
        "",
    ]

"""The pure rules: the code table at its thresholds, progress toward the next code, months and
time zones (no database)."""

from __future__ import annotations

from datetime import date

import pytest

from ingest.billing.errors import InvalidMonth, InvalidTimeZone
from ingest.billing.months import Month, parse_month, validate_timezone
from ingest.billing.rules import (
    EpisodePeriods,
    Period,
    Progress,
    day_progress,
    extra_units,
    management_codes,
    minute_progress,
    setup_period,
    supply_code,
)


@pytest.mark.parametrize(
    ("days", "code"),
    [(0, None), (1, None), (2, "99445"), (15, "99445"), (16, "99454"), (30, "99454")],
)
def test_supply_code(days: int, code: str | None) -> None:
    assert supply_code(days) == code


@pytest.mark.parametrize(
    ("minutes", "units"), [(0, 0), (20, 0), (39, 0), (40, 1), (59, 1), (60, 2), (79, 2), (80, 3)]
)
def test_99458_units_count_full_20_minutes_after_the_first_20(minutes: int, units: int) -> None:
    assert extra_units(minutes) == units


def test_management_codes_carry_the_month_and_need_an_interactive_entry() -> None:
    march = Month(2026, 3)
    assert management_codes(45, False, march) == []
    [first, extra] = management_codes(45, True, march)
    assert (first.code, first.period_start, first.period_end, first.days) == (
        "99457",
        date(2026, 3, 1),
        date(2026, 3, 31),
        None,
    )
    assert (extra.code, extra.units) == ("99458", 1)


@pytest.mark.parametrize(
    ("days", "today", "expected"),
    [
        (0, date(2026, 3, 1), Progress("99445", 2, "days")),
        (1, date(2026, 3, 30), Progress("99445", 1, "days")),
        (13, date(2026, 3, 20), Progress("99454", 3, "days")),
        (13, date(2026, 3, 29), Progress("99454", 3, "days", reachable=False)),
        (13, date(2026, 4, 2), Progress("99454", 3, "days", reachable=False)),
        (16, date(2026, 3, 20), None),
    ],
)
def test_day_progress(days: int, today: date, expected: Progress | None) -> None:
    period = Period(1, 1, date(2026, 3, 1), date(2026, 3, 30), days)
    assert day_progress(period, today) == expected


@pytest.mark.parametrize(
    ("minutes", "interactive", "expected"),
    [
        (0, False, Progress("99470", 10, "minutes")),
        (2, True, Progress("99470", 8, "minutes")),
        (12, True, Progress("99457", 8, "minutes")),
        (12, False, Progress("99470", 0, "interactive")),
        (25, False, Progress("99457", 0, "interactive")),
        (20, True, Progress("99458", 20, "minutes")),
        (45, True, Progress("99458", 15, "minutes")),
    ],
)
def test_minute_progress(minutes: int, interactive: bool, expected: Progress) -> None:
    assert minute_progress(minutes, interactive) == expected


def test_setup_goes_to_the_first_period_with_two_days_once() -> None:
    periods = [Period(7, k, date(2026, 1, 1), date(2026, 1, 30), d) for k, d in ((1, 1), (2, 2), (3, 9))]
    assert setup_period(EpisodePeriods(7, periods)) == periods[1]
    assert setup_period(EpisodePeriods(7, periods, setup_earned_before=True)) is None


@pytest.mark.parametrize("text", ["2026-03", "2000-01", "9999-12"])
def test_months_that_parse(text: str) -> None:
    assert str(parse_month(text)) == text


def test_month_bounds() -> None:
    assert (Month(2028, 2).first_day, Month(2028, 2).last_day) == (date(2028, 2, 1), date(2028, 2, 29))
    assert Month(2026, 12).last_day == date(2026, 12, 31)


@pytest.mark.parametrize("text", ["2026-13", "2026-1", "july", "", "2026-03 ", "2026/03", "１２３４-01"])
def test_months_that_do_not(text: str) -> None:
    with pytest.raises(InvalidMonth, match="YYYY-MM"):
        parse_month(text)


@pytest.mark.parametrize("name", ["UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe"])
def test_known_time_zones(name: str) -> None:
    assert validate_timezone(name) == name


@pytest.mark.parametrize("name", ["", "utc/x", "/etc/localtime", "../zoneinfo/UTC", "localtime", "Factory"])
def test_unknown_time_zones(name: str) -> None:
    with pytest.raises(InvalidTimeZone):
        validate_timezone(name)

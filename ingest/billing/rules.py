"""The CPT 2026 remote monitoring code table as pure functions: counts in, codes out.

Nothing here reads the clock or the database: the counting query (:mod:`ingest.billing.queries`)
supplies distinct clinic-local days per 30-day period and the month's minutes; these functions
decide the codes (``docs/contract/billing.md``, table and precise rules) and how far a patient is
from the next one. Sources for each rule: ``docs/billing.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final, Literal

from ingest.billing.months import Month

SETUP: Final = "99453"  # device set-up and education: once per episode
SUPPLY_2_15: Final = "99445"  # device supply, readings on 2-15 days of a 30-day period
SUPPLY_16_30: Final = "99454"  # device supply, readings on 16 or more days
MANAGEMENT_10: Final = "99470"  # treatment management, first 10 minutes of the month
MANAGEMENT_20: Final = "99457"  # treatment management, first 20 minutes of the month
MANAGEMENT_EXTRA: Final = "99458"  # each further full 20 minutes

PERIOD_DAYS: Final = 30
SUPPLY_MIN_DAYS: Final = 2  # also the setup threshold
SUPPLY_FULL_DAYS: Final = 16
MANAGEMENT_MIN_MINUTES: Final = 10
MANAGEMENT_FULL_MINUTES: Final = 20
EXTRA_BLOCK_MINUTES: Final = 20

#: Display order of codes on a patient's rows (the CSV keeps it).
CODE_ORDER: Final = (SETUP, SUPPLY_2_15, SUPPLY_16_30, MANAGEMENT_10, MANAGEMENT_20, MANAGEMENT_EXTRA)


@dataclass(frozen=True, slots=True)
class Period:
    """One 30-day period of an episode (the last one of an ended episode may be shorter)."""

    episode_id: int
    index: int  # 1 = days 1-30 of the episode
    start: date
    end: date  # inclusive
    days: int  # distinct clinic-local days with stored readings


@dataclass(frozen=True, slots=True)
class EpisodePeriods:
    """The periods of one episode that overlap the month, oldest first, and whether an earlier
    period of the episode already had readings on 2 days (then 99453 was earned before)."""

    episode_id: int
    periods: Sequence[Period]
    setup_earned_before: bool = False


@dataclass(frozen=True, slots=True)
class Code:
    code: str
    units: int
    period_start: date
    period_end: date
    days: int | None  # the period's days for setup and supply codes; None for management


@dataclass(frozen=True, slots=True)
class Progress:
    """How much more is needed for the next code: ``more`` days or minutes, or only an
    interactive communication (``more`` 0). ``reachable`` is False when the period does not
    have enough days left for it."""

    code: str
    more: int
    unit: Literal["days", "minutes", "interactive"]
    reachable: bool = True


def supply_code(days: int) -> str | None:
    """99454 from 16 days, 99445 for 2-15 days, nothing below 2 (they exclude each other)."""
    if days >= SUPPLY_FULL_DAYS:
        return SUPPLY_16_30
    if days >= SUPPLY_MIN_DAYS:
        return SUPPLY_2_15
    return None


def extra_units(minutes: int) -> int:
    """Units of 99458: each further full 20 minutes after the first 20 (40 -> 1, 60 -> 2)."""
    return max(0, (minutes - MANAGEMENT_FULL_MINUTES) // EXTRA_BLOCK_MINUTES)


def management_codes(minutes: int, interactive: bool, month: Month) -> list[Code]:
    """The month's treatment management codes: none without an interactive communication or
    under 10 minutes; 99470 for 10-19; 99457 from 20, with 99458 per further full 20 minutes."""
    if not interactive or minutes < MANAGEMENT_MIN_MINUTES:
        return []
    first, last = month.first_day, month.last_day
    if minutes < MANAGEMENT_FULL_MINUTES:
        return [Code(MANAGEMENT_10, 1, first, last, None)]
    codes = [Code(MANAGEMENT_20, 1, first, last, None)]
    units = extra_units(minutes)
    if units:
        codes.append(Code(MANAGEMENT_EXTRA, units, first, last, None))
    return codes


def setup_period(episode: EpisodePeriods) -> Period | None:
    """The period that earns the episode's 99453: its first with readings on 2 days."""
    if episode.setup_earned_before:
        return None
    for period in sorted(episode.periods, key=lambda p: p.index):
        if period.days >= SUPPLY_MIN_DAYS:
            return period
    return None


def ends_in(period: Period, month: Month) -> bool:
    """A period belongs to the month in which it ends."""
    return month.first_day <= period.end <= month.last_day


def period_codes(episodes: Sequence[EpisodePeriods], month: Month) -> list[Code]:
    """Setup and supply codes of the periods ending in ``month`` (each period its own)."""
    codes: list[Code] = []
    for episode in episodes:
        setup = setup_period(episode)
        for period in episode.periods:
            if not ends_in(period, month):
                continue
            if setup is not None and period.index == setup.index:
                codes.append(Code(SETUP, 1, period.start, period.end, period.days))
            supply = supply_code(period.days)
            if supply is not None:
                codes.append(Code(supply, 1, period.start, period.end, period.days))
    return codes


def month_codes(
    episodes: Sequence[EpisodePeriods], minutes: int, interactive: bool, month: Month
) -> list[Code]:
    """All of a patient's codes for the month: period codes by period, then management codes."""
    codes = period_codes(episodes, month)
    codes.sort(key=lambda c: (c.period_start, CODE_ORDER.index(c.code)))
    return codes + management_codes(minutes, interactive, month)


def day_progress(period: Period, today: date) -> Progress | None:
    """Days still needed in ``period`` for its next supply code, seen on ``today`` (clinic-local).

    None once 99454 is earned. ``reachable``: whether the days left in the period (today
    included, whether or not it already has a reading) could still bring it there.
    """
    if period.days >= SUPPLY_FULL_DAYS:
        return None
    target, code = (
        (SUPPLY_MIN_DAYS, SUPPLY_2_15) if period.days < SUPPLY_MIN_DAYS else (SUPPLY_FULL_DAYS, SUPPLY_16_30)
    )
    more = target - period.days
    days_left = 0 if today > period.end else (period.end - max(today, period.start)).days + 1
    return Progress(code, more, "days", reachable=more <= days_left)


def minute_progress(minutes: int, interactive: bool) -> Progress:
    """Minutes still needed this month for the next management code (or another 99458 unit);
    with enough minutes but no interactive communication, that communication is what is needed."""
    if minutes < MANAGEMENT_MIN_MINUTES:
        target, code = MANAGEMENT_MIN_MINUTES, MANAGEMENT_10
    elif minutes < MANAGEMENT_FULL_MINUTES:
        target, code = MANAGEMENT_FULL_MINUTES, MANAGEMENT_20
    else:
        target = MANAGEMENT_FULL_MINUTES + EXTRA_BLOCK_MINUTES * (extra_units(minutes) + 1)
        code = MANAGEMENT_EXTRA
    if not interactive and minutes >= MANAGEMENT_MIN_MINUTES:
        return Progress(
            MANAGEMENT_20 if minutes >= MANAGEMENT_FULL_MINUTES else MANAGEMENT_10, 0, "interactive"
        )
    return Progress(code, target - minutes, "minutes")


def current_period(episodes: Sequence[EpisodePeriods], today: date, month: Month) -> Period | None:
    """The period progress is measured in: the one running on ``today`` (clinic-local), else (a
    past month) the latest period ending in ``month``, else the latest that overlaps it."""
    periods = [p for e in episodes for p in e.periods]
    running = [p for p in periods if p.start <= today <= p.end]
    if running:
        return running[-1]
    ended = [p for p in periods if ends_in(p, month)]
    return max(ended or periods, key=lambda p: p.end, default=None)

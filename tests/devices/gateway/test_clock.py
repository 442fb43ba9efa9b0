"""Device clock correction (pure): every rule of devices.gateway.clock, with zones and DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from devices.ble.collector_api import ClockReference
from devices.gateway.clock import ClockPolicy, ResolvedTime, resolve, skew_of

NEW_YORK = ZoneInfo("America/New_York")
RECEIVED = datetime(2026, 11, 25, 15, 0, 30, 250_000, tzinfo=UTC)  # 10:00:30.25 in New York
POLICY = ClockPolicy(NEW_YORK)


def ny(year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=NEW_YORK)


def test_no_device_timestamp_means_the_reception_time() -> None:
    assert resolve(None, RECEIVED, None, POLICY) == ResolvedTime(RECEIVED, None)


def test_a_plausible_device_time_is_local_time_in_the_home_zone() -> None:
    result = resolve(datetime(2026, 11, 25, 9, 58), RECEIVED, None, POLICY)
    assert result == ResolvedTime(ny(2026, 11, 25, 9, 58), None)
    assert result.measured_at.astimezone(UTC) == datetime(2026, 11, 25, 14, 58, tzinfo=UTC)


def test_a_known_skew_is_removed_and_the_device_time_kept() -> None:
    # the device showed 06:43:30.6 when the gateway read 10:00:30.25 local: 3h17m behind
    reference = ClockReference(datetime(2026, 11, 25, 6, 43, 30, 600_000), RECEIVED)
    assert skew_of(reference, NEW_YORK) == -timedelta(hours=3, minutes=17)  # whole seconds
    result = resolve(datetime(2026, 11, 25, 6, 40, 0), RECEIVED, reference, POLICY)
    assert result == ResolvedTime(
        ny(2026, 11, 25, 9, 57, 0), ny(2026, 11, 25, 6, 40, 0), ("clock_corrected",)
    )


def test_two_readings_of_the_clock_give_the_same_corrected_time() -> None:
    stamp = datetime(2000, 1, 1, 0, 4, 0)
    first = ClockReference(datetime(2000, 1, 1, 0, 5, 0, 100_000), RECEIVED)
    later = ClockReference(datetime(2000, 1, 1, 0, 6, 0, 300_000), RECEIVED + timedelta(minutes=1))
    assert resolve(stamp, RECEIVED, first, POLICY).measured_at == resolve(
        stamp, RECEIVED, later, POLICY
    ).measured_at


def test_a_record_stored_before_the_clock_was_set_is_estimated() -> None:
    # the gateway has just set the clock (it now reads right), but the stored record still
    # carries the unset clock's year-2000 timestamp
    reference = ClockReference(datetime(2026, 11, 25, 10, 0, 30), RECEIVED)
    result = resolve(datetime(2000, 1, 1, 0, 0, 1), RECEIVED, reference, POLICY)
    assert result == ResolvedTime(RECEIVED, ny(2000, 1, 1, 0, 0, 1), ("time_estimated",))


def test_a_small_skew_is_not_a_correction() -> None:
    reference = ClockReference(datetime(2026, 11, 25, 10, 0, 31), RECEIVED)
    result = resolve(datetime(2026, 11, 25, 9, 0), RECEIVED, reference, POLICY)
    assert result == ResolvedTime(ny(2026, 11, 25, 9, 0), None)


@pytest.mark.parametrize(
    "device_time",
    [
        datetime(2000, 1, 1, 0, 3),  # an unset clock counting from 2000
        datetime(2031, 5, 1, 12, 0),  # far in the future
        datetime(1999, 12, 31, 23, 59),
    ],
)
def test_an_implausible_time_without_a_clock_reading_is_estimated(device_time: datetime) -> None:
    result = resolve(device_time, RECEIVED, None, POLICY)
    assert result == ResolvedTime(RECEIVED, device_time.replace(tzinfo=NEW_YORK), ("time_estimated",))


def test_a_device_that_says_its_clock_is_unset_is_not_believed() -> None:
    device_time = datetime(2026, 11, 25, 9, 59)
    result = resolve(device_time, RECEIVED, None, POLICY, device_flags=("device_clock_not_set",))
    assert result.measured_at == RECEIVED and result.status == ("time_estimated",)


def test_a_correction_that_lands_in_the_future_falls_back_to_reception() -> None:
    reference = ClockReference(datetime(2026, 11, 25, 9, 0, 30), RECEIVED)  # an hour behind
    result = resolve(datetime(2026, 11, 25, 9, 30), RECEIVED, reference, POLICY)
    assert result.measured_at == RECEIVED and result.status == ("time_estimated",)
    assert result.device_time == ny(2026, 11, 25, 9, 30)


def test_an_unknown_device_clock_reading_is_no_reference() -> None:
    reference = ClockReference(None, RECEIVED)
    assert skew_of(reference, NEW_YORK) is None
    result = resolve(datetime(2026, 11, 25, 9, 0), RECEIVED, reference, POLICY)
    assert result == ResolvedTime(ny(2026, 11, 25, 9, 0), None)


def test_times_in_the_dst_fold_and_gap_resolve_without_error() -> None:
    received = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    folded = resolve(datetime(2026, 11, 1, 1, 30), received, None, POLICY)  # happens twice
    assert folded.measured_at.astimezone(UTC) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    spring = datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
    gap = resolve(datetime(2026, 3, 8, 2, 30), spring, None, POLICY)  # never happens
    assert gap.measured_at.utcoffset() is not None

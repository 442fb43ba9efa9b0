"""Device clock correction at the edge. Pure: times come in, no clock is read here.

Health devices time-stamp measurements with their own wall clock, in local time without a zone,
and that clock is often unset (counting from 2000-01-01 after a battery change) or drifted. The
gateway resolves each device timestamp to an aware instant:

1. No device timestamp (heart-rate straps, continuous oximetry): the reception time.
2. The session read the device clock (Current Time) at a known gateway time: the skew between
   the two is removed. Corrected readings carry the status ``clock_corrected``.
3. No clock reading: the device time is taken as local time in the home's zone when it is
   plausible (not in the future, not older than ``max_age``, and the device does not flag its
   clock as unset); otherwise the reception time stands in, marked ``time_estimated``.
4. Whatever the path, a time in the future or older than ``max_age`` (a record stored before the
   clock was set, read after it was) is not believed: the reception time stands in, estimated.

Whenever ``measured_at`` is not the device's own time, the device time travels along as
``device_time`` (also aware, in the home's zone) so nothing the device said is lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Final

from devices.ble.collector_api import ClockReference

CLOCK_CORRECTED: Final = "clock_corrected"
TIME_ESTIMATED: Final = "time_estimated"
_CLOCK_NOT_SET_FLAGS: Final = frozenset({"device_clock_not_set"})


@dataclass(frozen=True, slots=True)
class ClockPolicy:
    tz: tzinfo
    """The home's zone: device clocks show local time there."""
    tolerance: timedelta = timedelta(seconds=2)
    """Skews up to this are ignored (transfer latency, second rounding)."""
    future_tolerance: timedelta = timedelta(minutes=2)
    max_age: timedelta = timedelta(days=400)


@dataclass(frozen=True, slots=True)
class ResolvedTime:
    measured_at: datetime
    device_time: datetime | None
    """The device's own time (aware) when ``measured_at`` differs from it."""
    status: tuple[str, ...] = ()


def skew_of(reference: ClockReference, tz: tzinfo) -> timedelta | None:
    """How far the device clock is ahead of the gateway's (negative: behind), in whole seconds.

    Rounding keeps a corrected time on whole seconds like the device's own timestamps, so the
    same stored record read in two sessions (two clock readings, milliseconds apart) gets the
    same corrected time, and with it the same natural key.
    """
    if reference.device_time is None:
        return None
    gateway_local = reference.gateway_time.astimezone(tz).replace(tzinfo=None)
    return timedelta(seconds=round((reference.device_time - gateway_local).total_seconds()))


def localize(naive: datetime, tz: tzinfo) -> datetime:
    """A device wall-clock reading as an aware time in ``tz`` (DST gaps resolve forward)."""
    return naive.replace(tzinfo=tz)


def resolve(
    device_time: datetime | None,
    received_at: datetime,
    reference: ClockReference | None,
    policy: ClockPolicy,
    *,
    device_flags: tuple[str, ...] = (),
) -> ResolvedTime:
    """The measurement time to publish for one device timestamp."""
    if device_time is None:
        return ResolvedTime(received_at, None)
    as_device_said = localize(device_time, policy.tz)
    skew = skew_of(reference, policy.tz) if reference is not None else None
    if skew is not None:
        if abs(skew) <= policy.tolerance:
            return _checked(as_device_said, None, (), received_at, policy)
        corrected = localize(device_time - skew, policy.tz)
        return _checked(corrected, as_device_said, (CLOCK_CORRECTED,), received_at, policy)
    unset = bool(_CLOCK_NOT_SET_FLAGS.intersection(device_flags))
    if not unset and received_at - policy.max_age <= as_device_said:
        return _checked(as_device_said, None, (), received_at, policy)
    return ResolvedTime(received_at, as_device_said, (TIME_ESTIMATED,))


def _checked(
    measured_at: datetime,
    device_time: datetime | None,
    status: tuple[str, ...],
    received_at: datetime,
    policy: ClockPolicy,
) -> ResolvedTime:
    """A measurement cannot postdate its reception, nor predate it by more than ``max_age``.

    The second case is a record stored while the clock was unset and read after the gateway set
    it: the clock reads right now, but the record still says 2000-01-01. Either way the reception
    time stands in, marked estimated, and the device's own time is kept.
    """
    if (
        measured_at > received_at + policy.future_tolerance
        or measured_at < received_at - policy.max_age
    ):
        original = device_time if device_time is not None else measured_at
        return ResolvedTime(received_at, original, (TIME_ESTIMATED,))
    return ResolvedTime(measured_at, device_time, status)

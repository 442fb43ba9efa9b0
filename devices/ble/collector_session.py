"""One connection to one health device: subscribe, fetch stored records, set the clock, listen.

Order of a session (each step only when the device offers it):
1. read the battery level and the device clock (Current Time), noting the gateway time with it;
2. subscribe to every measurement characteristic it has (and to the RACP, for indications);
3. fetch stored records through RACP, after the last sequence number kept for the device (and,
   when there is none after it, check that the device did not restart its numbering);
4. wait until stored measurements stop arriving, then write Current Time if the clock is off,
   so the values read so far are timed with the clock they were taken with;
5. listen for live measurements until the link drops, re-fetching records now and then.

Notifications are queued by the Bluetooth callback and handled by one task, in arrival order.
A value that does not decode is logged and counted, never allowed to stop the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Final

from devices.ble import racp
from devices.ble.characteristics import DECODERS, decode, full_uuid
from devices.ble.collector_api import (
    BleError,
    BleLink,
    ClockReference,
    GattError,
    ObservationSink,
)
from devices.ble.collector_transfer import (
    BLOOD_PRESSURE_STREAM,
    GLUCOSE_STREAM,
    Outcome,
    Transfer,
    outcome_of,
    request_for,
)
from devices.ble.collector_values import (
    BATTERY_LEVEL,
    BP_RECORD,
    GLUCOSE,
    GLUCOSE_CONTEXT,
    RACP,
    UNTIMED,
    ReceivedValue,
    SessionStats,
    ValueHandler,
)
from devices.ble.date_time import encode_current_time
from devices.errors import MalformedPayload

logger = logging.getLogger(__name__)

CURRENT_TIME: Final = "2a2b"
# Live measurement characteristics subscribed to, in table order: the entries of DECODERS marked
# live (not there: intermediate values, records fetched through RACP, CGM).
LIVE: Final[tuple[str, ...]] = tuple(f"{short:04x}" for short, c in DECODERS.items() if c.live)
_ADJUST_REASON_EXTERNAL_REFERENCE: Final = 0x02
_MIN_SETTLE_LIMIT: Final = 5.0


@dataclass(frozen=True, slots=True)
class SessionSettings:
    tz: tzinfo
    """The zone device clocks are set to (the home's local time)."""
    continuous_interval: timedelta = timedelta(seconds=60)
    racp_timeout: float = 30.0
    """Seconds a record transfer may go without progress before it is given up."""
    settle_time: float = 1.0
    """Quiet seconds to wait for stored measurements before setting the device clock."""
    record_poll_interval: float = 900.0
    """Seconds between record fetches while a record device stays connected."""
    clock_tolerance: timedelta = timedelta(seconds=2)
    low_battery_percent: int = 15


class DeviceSession:
    """Runs one connection; :meth:`run` returns when the link is down."""

    def __init__(
        self,
        link: BleLink,
        sink: ObservationSink,
        settings: SessionSettings,
        *,
        now: Callable[[], datetime],
    ) -> None:
        self._link = link
        self._sink = sink
        self._settings = settings
        self._now = now
        self._values = ValueHandler(
            link.address,
            sink,
            continuous_interval=settings.continuous_interval,
            low_battery_percent=settings.low_battery_percent,
            now=now,
        )
        self._inbox: asyncio.Queue[ReceivedValue] = asyncio.Queue()
        self._consumer: asyncio.Task[None] | None = None
        self._clock: ClockReference | None = None
        self._last_traffic = 0.0

    @property
    def stats(self) -> SessionStats:
        return self._values.stats

    def _has(self, short: str, prop: str | None = None) -> bool:
        info = self._link.characteristics.get(full_uuid(int(short, 16)))
        return info is not None and (prop is None or prop in info.properties)

    async def run(self) -> SessionStats:
        consumer = asyncio.create_task(self._consume(), name=f"ble-inbox-{self._link.address}")
        self._consumer = consumer
        try:
            await self._read_battery()
            self._clock = await self._read_clock()
            await self._subscribe()
            await self._fetch_records()
            await self._settle()
            await self._set_clock()
            await self._listen()
        except BleError as exc:
            if self._link.is_connected:
                raise
            logger.info("%s: link lost (%s)", self._link.address, exc)
        finally:
            await self._drain(consumer)
        return self.stats

    # setup ------------------------------------------------------------------------------------

    async def _read_battery(self) -> None:
        if not self._has(BATTERY_LEVEL, "read"):
            return
        try:
            data = await self._link.read(full_uuid(0x2A19))
        except GattError as exc:
            logger.warning("%s: battery level unreadable (%s)", self._link.address, exc)
            return
        await self._values.on_battery(data)
        if self._has(BATTERY_LEVEL, "notify"):
            await self._subscribe_one(BATTERY_LEVEL)

    async def _read_clock(self) -> ClockReference | None:
        if not self._has(CURRENT_TIME, "read"):
            return None
        try:
            data = await self._link.read(full_uuid(0x2A2B))
        except GattError as exc:
            logger.warning("%s: device clock unreadable (%s)", self._link.address, exc)
            return None
        gateway_time = self._now()
        try:
            fields = decode(CURRENT_TIME, data).fields
        except MalformedPayload as exc:
            self.stats.malformed += 1
            logger.warning("%s: undecodable device clock: %s", self._link.address, exc.reason)
            return None
        stamp = fields["timestamp"]
        device_time = None
        if stamp is not None:
            device_time = datetime.fromisoformat(stamp) + timedelta(
                seconds=int(fields["fractions256"]) / 256
            )
        return ClockReference(device_time, gateway_time)

    async def _subscribe(self) -> None:
        for short in (*LIVE, GLUCOSE, GLUCOSE_CONTEXT, BP_RECORD, RACP):
            if self._has(short, "notify") or self._has(short, "indicate"):
                await self._subscribe_one(short)

    async def _subscribe_one(self, short: str) -> None:
        def enqueue(data: bytes) -> None:
            self._inbox.put_nowait(ReceivedValue(short, data, self._now(), self._clock))

        try:
            await self._link.subscribe(full_uuid(int(short, 16)), enqueue)
        except GattError as exc:
            logger.warning("%s: cannot subscribe to %s (%s)", self._link.address, short, exc)

    async def _settle(self) -> None:
        """Let stored measurements (indicated on subscription) arrive under the old clock."""
        loop = asyncio.get_running_loop()
        self._last_traffic = started = loop.time()
        give_up = started + max(_MIN_SETTLE_LIMIT, 10 * self._settings.settle_time)
        while self._link.is_connected and loop.time() < give_up:
            await self._join()
            quiet = loop.time() - self._last_traffic
            if quiet >= self._settings.settle_time:
                return
            await asyncio.sleep(self._settings.settle_time - quiet)

    async def _set_clock(self) -> None:
        if not self._has(CURRENT_TIME, "write"):
            return
        now = self._now()
        local_now = now.astimezone(self._settings.tz).replace(tzinfo=None)
        clock = self._clock
        if clock is not None and clock.device_time is not None:
            gateway_local = clock.gateway_time.astimezone(self._settings.tz).replace(tzinfo=None)
            if abs(clock.device_time - gateway_local) <= self._settings.clock_tolerance:
                return
        value = encode_current_time(local_now, adjust_reason=_ADJUST_REASON_EXTERNAL_REFERENCE)
        try:
            await self._link.write(full_uuid(0x2A2B), value)
        except GattError as exc:
            logger.warning("%s: device refused the clock update (%s)", self._link.address, exc)
            return
        self._clock = ClockReference(local_now, now)  # values queued before keep the old one
        logger.info("%s: device clock set", self._link.address)

    async def _listen(self) -> None:
        interval = self._settings.record_poll_interval
        while self._link.is_connected:
            closed = asyncio.ensure_future(self._link.wait_closed())
            try:
                await asyncio.wait_for(asyncio.shield(closed), timeout=interval)
            except TimeoutError:
                await self._fetch_records()
            finally:
                closed.cancel()

    # stored records ---------------------------------------------------------------------------

    async def _fetch_records(self) -> None:
        if not self._has(RACP, "write") or not self._has(RACP, "indicate"):
            return
        if self._has(GLUCOSE, "notify"):
            await self._transfer_records(GLUCOSE_STREAM)
        elif self._has(BP_RECORD, "indicate") or self._has(BP_RECORD, "notify"):
            await self._transfer_records(BLOOD_PRESSURE_STREAM)

    async def _transfer_records(self, stream: str) -> None:
        last = await self._sink.last_sequence(self._link.address, stream)
        outcome = await self._run_transfer(stream, last, request_for(last))
        if outcome is Outcome.NO_RECORDS and last is not None:
            await self._check_for_restart(stream, last)

    async def _check_for_restart(self, stream: str, last: int) -> None:
        """Nothing after the cursor: make sure the device did not start numbering afresh (a
        reset meter would otherwise never be read again). Its newest record tells."""
        newest: list[int] = []
        probe = await self._run_transfer(stream, None, racp.report_last_record(), probe=newest)
        if probe is Outcome.COMPLETE and newest and max(newest) < last:
            logger.warning(
                "%s: %s record numbers restarted (newest %d, last kept %d); fetching all",
                self._link.address, stream, max(newest), last,
            )
            await self._run_transfer(stream, None, racp.report_all_records())

    async def _run_transfer(
        self,
        stream: str,
        last: int | None,
        request: bytes,
        *,
        probe: list[int] | None = None,
    ) -> Outcome:
        """One RACP report. With ``probe`` the records' sequence numbers are collected there
        and nothing is handed to the sink (what a probe returns is already kept)."""
        address = self._link.address
        self._values.transfer = transfer = Transfer(address, stream, last)
        outcome = Outcome.INTERRUPTED
        try:
            while not self._values.racp_answers.empty():
                self._values.racp_answers.get_nowait()
            await self._link.write(full_uuid(0x2A52), request)
            outcome = await self._await_outcome()
        except GattError as exc:
            logger.warning("%s: record request refused (%s)", address, exc)
            outcome = Outcome.REFUSED
        finally:
            await self._join()
            self._values.flush_glucose()
            self._values.transfer = None
            self.stats.transfers[stream] = outcome
            if probe is None:
                await self._sink.deliver(transfer.observations, transfer.cursor(outcome))
            else:
                probe.extend(sequence for sequence, _ in transfer.records)
        # a poll that finds nothing new, and a probe (nothing kept), are routine: DEBUG
        routine = probe is not None or outcome is Outcome.NO_RECORDS
        logger.log(
            logging.DEBUG if routine else logging.INFO,
            "%s: %s record %s %s, %d record(s)", address, stream,
            "probe" if probe is not None else "transfer", outcome.value, len(transfer.records),
        )
        return outcome

    async def _await_outcome(self) -> Outcome:
        loop = asyncio.get_running_loop()
        self._last_traffic = loop.time()
        closed = asyncio.ensure_future(self._link.wait_closed())
        try:
            while True:
                answer = asyncio.ensure_future(self._values.racp_answers.get())
                idle = loop.time() - self._last_traffic
                done, _ = await asyncio.wait(
                    {answer, closed},
                    timeout=max(self._settings.racp_timeout - idle, 0.0),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if answer in done:
                    outcome = outcome_of(answer.result())
                    if outcome is not None:
                        return outcome
                    continue
                answer.cancel()
                if closed in done:
                    return Outcome.INTERRUPTED
                if loop.time() - self._last_traffic >= self._settings.racp_timeout:
                    logger.warning("%s: record transfer stalled; aborting it", self._link.address)
                    with contextlib.suppress(BleError):
                        await self._link.write(full_uuid(0x2A52), racp.abort_operation())
                    return Outcome.INTERRUPTED
        finally:
            closed.cancel()

    # the inbox --------------------------------------------------------------------------------

    async def _consume(self) -> None:
        while True:
            item = await self._inbox.get()
            try:
                if item.short not in UNTIMED:  # a steady stream is not a transfer's progress
                    self._last_traffic = asyncio.get_running_loop().time()
                await self._values.handle(item)
            finally:
                self._inbox.task_done()

    async def _join(self) -> None:
        """Wait until every queued value is handled; re-raise if the handler task died."""
        consumer = self._consumer
        if consumer is None:
            return
        joined = asyncio.ensure_future(self._inbox.join())
        try:
            await asyncio.wait({joined, consumer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            joined.cancel()
        if consumer.done():
            consumer.result()

    async def _drain(self, consumer: asyncio.Task[None]) -> None:
        """Handle what is already queued, then stop the consumer."""
        try:
            await self._join()
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
        self._values.flush_glucose()
        await self._values.deliver_unsolicited()


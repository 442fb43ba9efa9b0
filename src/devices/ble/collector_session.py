"""One connection to one health device: subscribe, fetch stored records, set the clock, listen.

Order of a session (each step only when the device offers it):
1. read the battery level and the device clock (Current Time), noting the gateway time with it;
2. subscribe to every measurement characteristic it has (and to the RACP, for indications);
3. fetch stored records through RACP, after the last sequence number kept for the device;
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
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Final

from devices.ble import racp
from devices.ble.collector_api import (
    BleError,
    BleLink,
    ClockReference,
    GattError,
    Observation,
    ObservationSink,
)
from devices.ble.collector_records import RecordAssembler
from devices.ble.collector_transfer import (
    BLOOD_PRESSURE_STREAM,
    GLUCOSE_STREAM,
    Outcome,
    Transfer,
    outcome_of,
    request_for,
)
from devices.ble.date_time import encode_current_time
from devices.ble.registry import decode, full_uuid
from devices.errors import MalformedPayload

logger = logging.getLogger(__name__)

RACP: Final = "2a52"
CURRENT_TIME: Final = "2a2b"
BATTERY_LEVEL: Final = "2a19"
GLUCOSE: Final = "2a18"
GLUCOSE_CONTEXT: Final = "2a34"
BP_RECORD: Final = "2b36"
# Live measurement characteristics subscribed to. Not here: Intermediate Cuff Pressure and
# Intermediate Temperature (progress, no readings) and CGM (needs the session start time).
LIVE: Final = ("2a37", "2a35", "2a1c", "2a5e", "2a5f", "2a9d", "2a9c")
# Streams without their own timestamp, sampled at most once per ``continuous_interval``.
UNTIMED: Final = frozenset({"2a37", "2a5f"})
_ADJUST_REASON_EXTERNAL_REFERENCE: Final = 0x02


@dataclass(frozen=True, slots=True)
class _Item:
    """A value as the Bluetooth callback queued it, with the clock reference of that moment."""

    short: str
    data: bytes
    received_at: datetime
    clock: ClockReference | None


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


@dataclass
class SessionStats:
    observations: int = 0
    malformed: int = 0
    transfers: dict[str, Outcome] = field(default_factory=dict)


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
        self.stats = SessionStats()
        self._inbox: asyncio.Queue[_Item] = asyncio.Queue()
        self._consumer: asyncio.Task[None] | None = None
        self._pending_delivery: list[Observation] = []
        self._racp_answers: asyncio.Queue[racp.RacpResponse] = asyncio.Queue()
        self._clock: ClockReference | None = None
        self._battery_low = False
        self._last_kept: dict[str, datetime] = {}
        self._transfer: Transfer | None = None
        self._pending_glucose: tuple[int, Observation] | None = None
        self._assembler = RecordAssembler()
        self._last_traffic = 0.0

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
        await self._on_battery(data)
        if self._has(BATTERY_LEVEL, "notify"):
            await self._subscribe_one(BATTERY_LEVEL)

    async def _on_battery(self, data: bytes) -> None:
        try:
            level = int(decode(BATTERY_LEVEL, data).fields["battery_level_percent"])
        except MalformedPayload as exc:
            self._malformed(BATTERY_LEVEL, exc)
            return
        self._battery_low = level <= self._settings.low_battery_percent
        await self._sink.battery_level(self._link.address, level, self._now())

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
            self._malformed(CURRENT_TIME, exc)
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
            self._inbox.put_nowait(_Item(short, data, self._now(), self._clock))

        try:
            await self._link.subscribe(full_uuid(int(short, 16)), enqueue)
        except GattError as exc:
            logger.warning("%s: cannot subscribe to %s (%s)", self._link.address, short, exc)

    async def _settle(self) -> None:
        """Let stored measurements (indicated on subscription) arrive under the old clock."""
        loop = asyncio.get_running_loop()
        self._last_traffic = loop.time()
        while self._link.is_connected:
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
        address = self._link.address
        last = await self._sink.last_sequence(address, stream)
        self._transfer = transfer = Transfer(address, stream, last)
        outcome = Outcome.INTERRUPTED
        try:
            while not self._racp_answers.empty():
                self._racp_answers.get_nowait()
            await self._link.write(full_uuid(0x2A52), request_for(last))
            outcome = await self._await_outcome()
        except GattError as exc:
            logger.warning("%s: record request refused (%s)", address, exc)
            outcome = Outcome.REFUSED
        finally:
            await self._join()
            self._flush_glucose()
            self._transfer = None
            self.stats.transfers[stream] = outcome
            await self._sink.deliver(transfer.observations, transfer.cursor(outcome))
        logger.info(
            "%s: %s record transfer %s, %d record(s)", address, stream, outcome.value,
            len(transfer.records),
        )

    async def _await_outcome(self) -> Outcome:
        loop = asyncio.get_running_loop()
        self._last_traffic = loop.time()
        closed = asyncio.ensure_future(self._link.wait_closed())
        try:
            while True:
                answer = asyncio.ensure_future(self._racp_answers.get())
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
                self._last_traffic = asyncio.get_running_loop().time()
                await self._handle(item)
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
        self._flush_glucose()
        pending, self._pending_delivery = self._pending_delivery, []
        if pending:
            await self._sink.deliver(pending)

    async def _handle(self, item: _Item) -> None:
        short, data = item.short, item.data
        if short == RACP:
            try:
                self._racp_answers.put_nowait(racp.parse_response(data))
            except MalformedPayload as exc:
                self._malformed(short, exc)
            return
        if short == BATTERY_LEVEL:
            await self._on_battery(data)
            return
        try:
            if short == BP_RECORD:
                await self._on_bp_record(item)
            elif short == GLUCOSE:
                await self._on_glucose(item)
            elif short == GLUCOSE_CONTEXT:
                await self._on_glucose_context(data)
            else:
                await self._on_live(item)
        except MalformedPayload as exc:
            self._malformed(short, exc)

    def _observation(
        self, item: _Item, *, stored: bool, short: str | None = None, data: bytes | None = None
    ) -> Observation:
        short = short or item.short
        result = decode(short, item.data if data is None else data)
        extra = ("device_battery_low",) if self._battery_low else ()
        return Observation(
            self._link.address, short, result.measurements, item.received_at, item.clock, stored,
            extra,
        )

    async def _on_live(self, item: _Item) -> None:
        observation = self._observation(item, stored=False)
        if not observation.measurements:
            return
        short, received_at = item.short, item.received_at
        if short in UNTIMED:
            last = self._last_kept.get(short)
            if last is not None and received_at - last < self._settings.continuous_interval:
                return
            self._last_kept[short] = received_at
        self.stats.observations += 1
        await self._sink.deliver([observation])

    async def _on_bp_record(self, item: _Item) -> None:
        record = self._assembler.feed(item.data)
        if record is None:
            return
        observation = self._observation(
            item, stored=True, short=f"{record.uuid:04x}", data=record.value
        )
        await self._record(BLOOD_PRESSURE_STREAM, record.sequence, observation)

    async def _on_glucose(self, item: _Item) -> None:
        self._flush_glucose()
        result = decode(GLUCOSE, item.data)
        observation = self._observation(item, stored=True)
        sequence = int(result.fields["sequence_number"])
        if result.fields["context_information_follows"]:
            self._pending_glucose = (sequence, observation)
        else:
            await self._record(GLUCOSE_STREAM, sequence, observation)

    async def _on_glucose_context(self, data: bytes) -> None:
        fields = decode(GLUCOSE_CONTEXT, data).fields
        pending = self._pending_glucose
        if pending is None or pending[0] != fields["sequence_number"]:
            return
        self._pending_glucose = None
        sequence, observation = pending
        meal = fields.get("meal_name")
        if meal is not None and meal != "reserved":
            observation = _with_status(observation, f"meal_{meal}")
        await self._record(GLUCOSE_STREAM, sequence, observation)

    def _flush_glucose(self) -> None:
        pending, self._pending_glucose = self._pending_glucose, None
        if pending is not None:
            self._record_now(GLUCOSE_STREAM, *pending)

    async def _record(self, stream: str, sequence: int, observation: Observation) -> None:
        self._record_now(stream, sequence, observation)
        if self._transfer is None and self._pending_delivery:
            pending, self._pending_delivery = self._pending_delivery, []
            await self._sink.deliver(pending)

    def _record_now(self, stream: str, sequence: int, observation: Observation) -> None:
        self.stats.observations += 1
        transfer = self._transfer
        if transfer is not None and transfer.stream == stream:
            transfer.add(sequence, observation)
        else:  # outside a transfer (unsolicited): keep it, do not move the cursor
            self._pending_delivery = [*self._pending_delivery, observation]

    def _malformed(self, short: str, exc: MalformedPayload) -> None:
        self.stats.malformed += 1
        logger.warning("%s: undecodable %s value: %s", self._link.address, short, exc.reason)


def _with_status(observation: Observation, flag: str) -> Observation:
    return Observation(
        observation.address,
        observation.characteristic,
        observation.measurements,
        observation.received_at,
        observation.clock,
        observation.stored,
        (*observation.extra_status, flag),
    )

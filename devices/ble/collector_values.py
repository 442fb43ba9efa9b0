"""What the collector does with each value a device sends, in arrival order. No bleak here.

Live measurements go to the sink one value at a time (streams without their own timestamp are
sampled). Stored records (Glucose Measurement + Context, Blood Pressure Record) are held by the
running :class:`~devices.ble.collector_transfer.Transfer` and handed over with its cursor. RACP
indications are passed on to whoever waits for them. A value that does not decode is logged
(without its bytes) and counted, and the session goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from devices.ble import racp
from devices.ble.characteristics import decode
from devices.ble.collector_api import ClockReference, Observation, ObservationSink
from devices.ble.collector_records import RecordAssembler
from devices.ble.collector_transfer import (
    BLOOD_PRESSURE_STREAM,
    GLUCOSE_STREAM,
    Outcome,
    Transfer,
)
from devices.ble.result import DecodeResult
from devices.errors import MalformedPayload

logger = logging.getLogger(__name__)

RACP: Final = "2a52"
BATTERY_LEVEL: Final = "2a19"
GLUCOSE: Final = "2a18"
GLUCOSE_CONTEXT: Final = "2a34"
BP_RECORD: Final = "2b36"
# Streams without their own timestamp, sampled at most once per ``continuous_interval``.
UNTIMED: Final = frozenset({"2a37", "2a5f"})


@dataclass(frozen=True, slots=True)
class ReceivedValue:
    """A value as the Bluetooth callback queued it, with the clock reference of that moment."""

    short: str
    data: bytes
    received_at: datetime
    clock: ClockReference | None


@dataclass
class SessionStats:
    observations: int = 0
    malformed: int = 0
    transfers: dict[str, Outcome] = field(default_factory=dict)


class ValueHandler:
    def __init__(
        self,
        address: str,
        sink: ObservationSink,
        *,
        continuous_interval: timedelta,
        low_battery_percent: int,
        now: Callable[[], datetime],
    ) -> None:
        self._address = address
        self._sink = sink
        self._continuous_interval = continuous_interval
        self._low_battery_percent = low_battery_percent
        self._now = now
        self.stats = SessionStats()
        self.racp_answers: asyncio.Queue[racp.RacpResponse] = asyncio.Queue()
        self.transfer: Transfer | None = None
        self.battery_low = False
        self._last_kept: dict[str, datetime] = {}
        self._pending_glucose: tuple[int, Observation] | None = None
        self._unsolicited: list[Observation] = []
        self._assembler = RecordAssembler()

    async def handle(self, item: ReceivedValue) -> None:
        short = item.short
        try:
            if short == RACP:
                self.racp_answers.put_nowait(racp.parse_response(item.data))
            elif short == BATTERY_LEVEL:
                await self.on_battery(item.data)
            elif short == BP_RECORD:
                await self._on_bp_record(item)
            elif short == GLUCOSE:
                await self._on_glucose(item)
            elif short == GLUCOSE_CONTEXT:
                await self._on_glucose_context(item.data)
            else:
                await self._on_live(item)
        except MalformedPayload as exc:
            self.stats.malformed += 1
            logger.warning("%s: undecodable %s value: %s", self._address, short, exc.reason)

    async def on_battery(self, data: bytes) -> None:
        try:
            level = int(decode(BATTERY_LEVEL, data).fields["battery_level_percent"])
        except MalformedPayload as exc:
            self.stats.malformed += 1
            logger.warning("%s: undecodable battery level: %s", self._address, exc.reason)
            return
        self.battery_low = level <= self._low_battery_percent
        await self._sink.battery_level(self._address, level, self._now())

    def _observation(
        self, item: ReceivedValue, result: DecodeResult, *, stored: bool
    ) -> Observation:
        extra = ("device_battery_low",) if self.battery_low else ()
        return Observation(
            self._address, result.characteristic, result.measurements, item.received_at,
            item.clock, stored, extra,
        )

    async def _on_live(self, item: ReceivedValue) -> None:
        observation = self._observation(item, decode(item.short, item.data), stored=False)
        if not observation.measurements:
            return
        if item.short in UNTIMED:
            last = self._last_kept.get(item.short)
            if last is not None and item.received_at - last < self._continuous_interval:
                return
            self._last_kept[item.short] = item.received_at
        self.stats.observations += 1
        await self._sink.deliver([observation])

    async def _on_bp_record(self, item: ReceivedValue) -> None:
        record = self._assembler.feed(item.data)
        if record is None:
            return
        result = decode(f"{record.uuid:04x}", record.value)
        observation = self._observation(item, result, stored=True)
        await self._record(BLOOD_PRESSURE_STREAM, record.sequence, observation)

    async def _on_glucose(self, item: ReceivedValue) -> None:
        self.flush_glucose()
        result = decode(GLUCOSE, item.data)
        observation = self._observation(item, result, stored=True)
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

    def flush_glucose(self) -> None:
        """A glucose record whose context never came goes on without it."""
        pending, self._pending_glucose = self._pending_glucose, None
        if pending is not None:
            self._keep(GLUCOSE_STREAM, *pending)

    async def _record(self, stream: str, sequence: int, observation: Observation) -> None:
        self._keep(stream, sequence, observation)
        if self.transfer is None:
            await self.deliver_unsolicited()

    def _keep(self, stream: str, sequence: int, observation: Observation) -> None:
        self.stats.observations += 1
        transfer = self.transfer
        if transfer is not None and transfer.stream == stream:
            transfer.add(sequence, observation)
        else:  # outside a transfer (unsolicited): deliver it, but it does not move the cursor
            self._unsolicited.append(observation)

    async def deliver_unsolicited(self) -> None:
        pending, self._unsolicited = self._unsolicited, []
        if pending:
            await self._sink.deliver(pending)


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

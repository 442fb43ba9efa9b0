"""The one code path every reading takes, whatever its source.

validate -> normalise units -> attribute to a patient -> insert idempotently -> hooks (alerts,
export outbox) on the readings that are new. ECG strips (``"metric": "ecg"``) take the same path
into a table of their own (``ingest.ecg.store``) and their own hooks (their outbox rows). Everything
for one batch happens in the caller's transaction, so a batch is stored, dead-lettered and handed to
the hooks together or not at all.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol
from uuid import UUID

import psycopg

from devices.catalogue import Metric, load_catalogue
from devices.ecg import EcgStrip, strip_to_wire
from devices.errors import MalformedPayload
from devices.frozen import fast_init
from devices.message import Rejection, Rules, decode_message, parse_message
from devices.models import Reading
from devices.raw_message import parse_raw
from ingest.ecg.store import StoredStrip, insert_strip
from ingest.store.deadletters import DeadLetter
from ingest.store.readings import InsertStatus, insert_readings, update_battery_levels

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class StoredReading(NamedTuple):
    """A reading that was new to the store, with the patient it was attributed to (a named
    tuple: one is made per stored reading)."""

    reading: Reading
    patient_id: UUID


class NewReadingsHook(Protocol):
    """Called inside the ingest transaction with the readings that were newly stored."""

    def __call__(self, conn: psycopg.Connection[Any], readings: Sequence[StoredReading]) -> None: ...


class NewStripsHook(Protocol):
    """Called inside the ingest transaction with the ECG strips that were newly stored."""

    def __call__(self, conn: psycopg.Connection[Any], strips: Sequence[StoredStrip]) -> None: ...


@fast_init
@dataclass(frozen=True, slots=True)
class Envelope:
    """One incoming message and what its transport vouches for."""

    source: str
    raw: bytes
    received_at: datetime
    device_id: str | None = None
    topic: str | None = None
    decoded: Any = None  # the JSON already decoded from ``raw`` by the transport, if it did

    def payload(self, rules: Rules) -> Any:
        """The decoded message; raw bytes are decoded under the size limits of ``rules``."""
        return decode_message(self.raw, rules) if self.decoded is None else self.decoded

    def dead_letter(
        self, reason: str, *, raw: bytes | None = None, index: int | None = None
    ) -> DeadLetter:
        """The dead letter of this message (``raw`` None), or of its reading ``index``."""
        return DeadLetter.build(
            self.source,
            reason,
            self.raw if raw is None else raw,
            topic=self.topic,
            device_id=self.device_id,
            reading_index=index,
        )


@dataclass(slots=True)
class Outcome:
    """What became of one envelope."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    error: str | None = None  # message-level failure: nothing from this envelope was stored
    new: list[StoredReading] = field(default_factory=list)
    new_strips: list[StoredStrip] = field(default_factory=list)

    def copy(self) -> Outcome:
        """A copy whose lists can grow without touching this one's."""
        return Outcome(
            self.accepted, self.duplicates, list(self.rejected), self.error, list(self.new),
            list(self.new_strips),
        )


@dataclass(frozen=True, slots=True)
class Prepared:
    """A batch after :meth:`Pipeline.prepare`: parsed and checked, not yet stored."""

    envelopes: tuple[Envelope, ...]
    now: datetime  # when it was prepared: the readings' received_at
    outcomes: tuple[Outcome, ...]  # what parsing found, per envelope (store works on copies)
    letters: tuple[DeadLetter, ...]  # the dead letters parsing found
    readings: list[Reading]  # the readings to store, the batch's own repeats dropped
    owners: list[tuple[int, int]]  # (envelope position, reading index) per reading
    strips: list[tuple[int, int, EcgStrip]]  # (envelope position, reading index, strip)


class Pipeline:
    def __init__(
        self,
        *,
        rules: Rules | None = None,
        catalogue: Mapping[str, Metric] | None = None,
        hooks: Sequence[NewReadingsHook] = (),
        strip_hooks: Sequence[NewStripsHook] = (),
        clock: Clock = utc_now,
    ) -> None:
        self.rules = rules or Rules()
        self.catalogue = catalogue if catalogue is not None else load_catalogue()
        self.hooks: list[NewReadingsHook] = list(hooks)
        self.strip_hooks: list[NewStripsHook] = list(strip_hooks)
        self.clock = clock

    def add_hook(self, hook: NewReadingsHook) -> None:
        self.hooks.append(hook)

    def add_strip_hook(self, hook: NewStripsHook) -> None:
        self.strip_hooks.append(hook)

    def process(
        self,
        conn: psycopg.Connection[Any],
        envelopes: Sequence[Envelope],
        *,
        collect: list[DeadLetter],
    ) -> list[Outcome]:
        """Store a batch of envelopes in the caller's transaction; one outcome per envelope.

        The dead letters of what is refused are appended to ``collect``: the pipeline writes none
        itself (``Services.ingest`` writes all of a transaction's dead letters at once, bounded)."""
        return self.store(conn, self.prepare(envelopes), collect=collect)

    def prepare(self, envelopes: Sequence[Envelope]) -> Prepared:
        """The part of :meth:`process` that needs no database: parse, validate, normalise and
        drop the batch's own repeats. Pure; the result can be stored (again) by :meth:`store`."""
        now = self.clock()
        outcomes = [Outcome() for _ in envelopes]
        letters: list[DeadLetter] = []
        batch: list[Reading] = []
        owners: list[tuple[int, int]] = []  # (envelope position, reading index) per batch row
        seen: set[tuple[str, str, datetime]] = set()
        strips: list[tuple[int, int, EcgStrip]] = []  # (envelope position, reading index, strip)
        for pos, env in enumerate(envelopes):
            outcome = outcomes[pos]
            try:
                if env.decoded is None and env.device_id is not None:  # an MQTT message
                    parsed = parse_raw(
                        env.raw, device_id=env.device_id, now=now, rules=self.rules,
                        catalogue=self.catalogue,
                    )
                else:
                    parsed = parse_message(
                        env.payload(self.rules),
                        device_id=env.device_id,
                        now=now,
                        rules=self.rules,
                        catalogue=self.catalogue,
                    )
            except MalformedPayload as exc:
                outcome.error = str(exc)
                letters.append(env.dead_letter(str(exc)))
                continue
            for rejection in parsed.rejections:
                outcome.rejected.append(rejection)
                letters.append(
                    env.dead_letter(rejection.reason, raw=_raw_of(rejection), index=rejection.index)
                )
            for index, reading in parsed.readings:
                key = reading.key
                if key in seen:
                    outcome.duplicates += 1
                    continue
                seen.add(key)
                batch.append(reading)
                owners.append((pos, index))
            for index, strip in parsed.strips:
                if strip.key in seen:
                    outcome.duplicates += 1
                    continue
                seen.add(strip.key)
                strips.append((pos, index, strip))
        return Prepared(tuple(envelopes), now, tuple(outcomes), tuple(letters), batch, owners, strips)

    def store(
        self, conn: psycopg.Connection[Any], prepared: Prepared, *, collect: list[DeadLetter]
    ) -> list[Outcome]:
        """The database part of :meth:`process`, in the caller's transaction (``prepared`` is
        left as it was: a batch whose transaction failed is stored again from it)."""
        envelopes, now, batch, owners, strips = (
            prepared.envelopes, prepared.now, prepared.readings, prepared.owners, prepared.strips
        )
        outcomes = [o.copy() for o in prepared.outcomes]
        letters = list(prepared.letters)
        new: list[StoredReading] = []
        # a batch of ECG strips alone has no readings: no trip to the readings store for it
        results = insert_readings(conn, batch, received_at=now) if batch or not strips else []
        update_battery_levels(conn, batch)
        for reading, (pos, index), result in zip(batch, owners, results, strict=True):
            outcome, env = outcomes[pos], envelopes[pos]
            if result.status is InsertStatus.INSERTED:
                assert result.patient_id is not None
                stored = StoredReading(reading, result.patient_id)
                outcome.accepted += 1
                outcome.new.append(stored)
                new.append(stored)
            elif result.status is InsertStatus.DUPLICATE:
                outcome.duplicates += 1
            else:
                reason = _attribution_reason(result.status, reading)
                rejection = Rejection(index, reason, _reading_raw(reading))
                outcome.rejected.append(rejection)
                letters.append(env.dead_letter(reason, raw=_raw_of(rejection), index=index))
        new_strips = self._store_strips(conn, strips, outcomes, envelopes, letters, now)
        for outcome in outcomes:
            outcome.rejected.sort(key=lambda r: r.index)
        collect.extend(letters)
        if new:
            for hook in self.hooks:
                hook(conn, new)
        if new_strips:
            for strip_hook in self.strip_hooks:
                strip_hook(conn, new_strips)
        logger.debug(
            "batch of %d envelopes: %d new, %d dead letters", len(envelopes), len(new), len(letters)
        )
        return outcomes

    @staticmethod
    def _store_strips(
        conn: psycopg.Connection[Any],
        strips: Sequence[tuple[int, int, EcgStrip]],
        outcomes: Sequence[Outcome],
        envelopes: Sequence[Envelope],
        letters: list[DeadLetter],
        now: datetime,
    ) -> list[StoredStrip]:
        """Store the batch's strips (one statement each: they are few and large)."""
        new: list[StoredStrip] = []
        for pos, index, strip in strips:
            outcome = outcomes[pos]
            result = insert_strip(conn, strip, received_at=now)
            if result.status is InsertStatus.INSERTED:
                assert result.patient_id is not None and result.clinic_id is not None
                stored = StoredStrip(strip.id, result.clinic_id, result.patient_id, now, strip)
                outcome.accepted += 1
                outcome.new_strips.append(stored)
                new.append(stored)
            elif result.status is InsertStatus.DUPLICATE:
                outcome.duplicates += 1
            else:
                reason = _attribution_reason(result.status, strip)
                rejection = Rejection(index, reason, strip_to_wire(strip))
                outcome.rejected.append(rejection)
                letters.append(envelopes[pos].dead_letter(reason, raw=_raw_of(rejection), index=index))
        return new


def _attribution_reason(status: InsertStatus, reading: Reading | EcgStrip) -> str:
    if status is InsertStatus.UNKNOWN_DEVICE:
        return f"device {reading.device_id!r} is not registered"
    return (
        f"device {reading.device_id!r} is not assigned to a patient at "
        f"{reading.measured_at.isoformat()}"
    )


def _reading_raw(reading: Reading) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "device_id": reading.device_id,
        "metric": reading.metric,
        "value": reading.original_value,
        "unit": reading.original_unit,
        "measured_at": reading.measured_at.isoformat(),
    }
    if reading.status:
        raw["status"] = list(reading.status)
    for name in ("source", "gateway_id"):
        if (value := getattr(reading, name)) is not None:
            raw[name] = value
    if reading.device_time is not None:
        raw["device_time"] = reading.device_time.isoformat()
    return raw


def _raw_of(rejection: Rejection) -> bytes:
    if rejection.raw is None:
        return b""
    return json.dumps(rejection.raw, default=str, ensure_ascii=False).encode("utf-8")


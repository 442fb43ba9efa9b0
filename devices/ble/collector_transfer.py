"""Stored-record bookkeeping for one connection: RACP transfers and their cursors. Pure logic.

A transfer asks for every record after the last sequence number kept for the device (all of them
the first time). Records arriving during it are held and handed to the sink together, with the new
cursor, when the device ends the procedure. The cursor only moves when the device says the
transfer completed (success or "no records found"); an interrupted transfer still hands over what
arrived (the gateway drops records it already holds) but keeps the old cursor, so the next
transfer asks again from the same point and nothing is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from devices.ble import racp
from devices.ble.collector_api import Observation, RecordCursor

# Record streams: the characteristic whose values carry records, by stream name.
GLUCOSE_STREAM: Final = "glucose"
BLOOD_PRESSURE_STREAM: Final = "blood_pressure"
_SEQUENCE_MAX: Final = 0xFFFF


class Outcome(Enum):
    COMPLETE = "complete"
    NO_RECORDS = "no_records"
    REFUSED = "refused"
    INTERRUPTED = "interrupted"

    @property
    def moves_cursor(self) -> bool:
        return self in (Outcome.COMPLETE, Outcome.NO_RECORDS)


def request_for(last_sequence: int | None) -> bytes:
    """The RACP request of a transfer that starts after ``last_sequence``."""
    if last_sequence is None or last_sequence >= _SEQUENCE_MAX:
        return racp.report_all_records()
    return racp.report_records_from(last_sequence + 1)


def outcome_of(response: racp.RacpResponse) -> Outcome | None:
    """What a RACP indication means for a running report; None if it is not its answer."""
    if response.request_op_code != racp.OpCode.REPORT_STORED_RECORDS:
        return None
    if response.response_code == racp.ResponseCode.SUCCESS:
        return Outcome.COMPLETE
    if response.response_code == racp.ResponseCode.NO_RECORDS_FOUND:
        return Outcome.NO_RECORDS
    if response.response_code == racp.ResponseCode.PROCEDURE_NOT_COMPLETED:
        return Outcome.INTERRUPTED
    return Outcome.REFUSED


@dataclass
class Transfer:
    """One running record transfer."""

    address: str
    stream: str
    last_sequence: int | None
    records: list[tuple[int, Observation]] = field(default_factory=list)

    def add(self, sequence: int, observation: Observation) -> None:
        self.records.append((sequence, observation))

    def cursor(self, outcome: Outcome) -> RecordCursor | None:
        """The cursor to store with this transfer's records (None: leave it as it is)."""
        if not outcome.moves_cursor or not self.records:
            return None
        highest = max(sequence for sequence, _ in self.records)
        if self.last_sequence is not None and highest <= self.last_sequence:
            return None
        return RecordCursor(self.address, self.stream, highest)

    @property
    def observations(self) -> list[Observation]:
        return [observation for _, observation in self.records]

"""The device side of the Record Access Control Point (0x2A52): stored records on request.

Requests are ``op code · operator · operand``; the server answers with an indication on the RACP
characteristic after sending the selected records (as notifications or indications of the
record characteristic). Supported: report (0x01), delete (0x02), abort (0x03) and count (0x04)
with the operators all, ≤, ≥, within range (filter type 0x01 = sequence number), first and last.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from bumble import att, core, gatt
from bumble.device import Connection

from devices.ble.emulated import encoding

if TYPE_CHECKING:
    from devices.ble.emulated.peripheral import EmulatedPeripheral


def refuse_read(_connection: Connection) -> bytes:
    raise att.ATT_Error(att.ErrorCode.READ_NOT_PERMITTED)

logger = logging.getLogger(__name__)

OP_REPORT: Final = 0x01
OP_DELETE: Final = 0x02
OP_ABORT: Final = 0x03
OP_COUNT: Final = 0x04
SUCCESS: Final = 0x01
OP_CODE_NOT_SUPPORTED: Final = 0x02
INVALID_OPERATOR: Final = 0x03
OPERATOR_NOT_SUPPORTED: Final = 0x04
INVALID_OPERAND: Final = 0x05
NO_RECORDS_FOUND: Final = 0x06
PROCEDURE_NOT_COMPLETED: Final = 0x08
OPERAND_NOT_SUPPORTED: Final = 0x09
_FILTER_SEQUENCE: Final = 0x01


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One stored record: the values to send for it, in order, as (characteristic, bytes)."""

    sequence: int
    values: tuple[tuple[gatt.Characteristic[bytes], bytes], ...]


class _Refused(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class RacpServer:
    """Serves one RACP characteristic over a record list owned by the device."""

    def __init__(self, peripheral: EmulatedPeripheral, records: list[StoredRecord]) -> None:
        self._peripheral = peripheral
        self.records = records
        self.characteristic: gatt.Characteristic[bytes] = gatt.Characteristic(
            core.UUID.from_16_bits(0x2A52, "Record Access Control Point"),
            gatt.Characteristic.Properties.WRITE | gatt.Characteristic.Properties.INDICATE,
            gatt.Characteristic.Permissions.WRITEABLE,
            gatt.CharacteristicValue(read=refuse_read, write=self._on_write),
        )
        self._task: asyncio.Task[None] | None = None
        self._abort = False
        self.requests: list[bytes] = []

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    def _on_write(self, _connection: Connection, value: bytes) -> None:
        if not self._peripheral.subscribed(self.characteristic):
            raise att.ATT_Error(att.ErrorCode.CCCD_IMPROPERLY_CONFIGURED)
        op = value[0] if value else 0
        if self.busy and op != OP_ABORT:
            raise att.ATT_Error(att.ErrorCode.PROCEDURE_ALREADY_IN_PROGRESS)
        self.requests.append(bytes(value))
        if op == OP_ABORT:
            self._abort = True
        self._task = asyncio.get_running_loop().create_task(self._run(bytes(value)))

    async def _run(self, request: bytes) -> None:
        await asyncio.sleep(0)  # the write response goes out first
        op = request[0] if request else 0
        if op == OP_ABORT:
            code = SUCCESS if len(request) == 2 and request[1] == 0 else INVALID_OPERATOR
            await self._respond(encoding.racp_response(OP_ABORT, code))
            return
        if op not in (OP_REPORT, OP_DELETE, OP_COUNT):
            await self._respond(encoding.racp_response(op, OP_CODE_NOT_SUPPORTED))
            return
        try:
            selected = self._select(request)
        except _Refused as refused:
            await self._respond(encoding.racp_response(op, refused.code))
            return
        if op == OP_COUNT:
            await self._respond(encoding.racp_count(len(selected)))
        elif not selected:
            await self._respond(encoding.racp_response(op, NO_RECORDS_FOUND))
        elif op == OP_DELETE:
            doomed = {record.sequence for record in selected}
            self.records[:] = [r for r in self.records if r.sequence not in doomed]
            await self._respond(encoding.racp_response(op, SUCCESS))
        else:
            await self._report(selected)

    async def _report(self, selected: Sequence[StoredRecord]) -> None:
        self._abort = False
        faults = self._peripheral.faults
        for sent, record in enumerate(selected):
            if faults.drop_link_after_records is not None and sent >= faults.drop_link_after_records:
                faults.drop_link_after_records = None
                await self._peripheral.drop_link()
                return
            if faults.racp_fail_after_records is not None and sent >= faults.racp_fail_after_records:
                faults.racp_fail_after_records = None
                await self._respond(encoding.racp_response(OP_REPORT, PROCEDURE_NOT_COMPLETED))
                return
            if faults.racp_stall_after_records is not None and sent >= faults.racp_stall_after_records:
                faults.racp_stall_after_records = None
                return
            for characteristic, value in record.values:
                if not await self._peripheral.send(characteristic, value):
                    return
            await asyncio.sleep(0)
            if self._abort:
                logger.debug("record transfer aborted after %d records", sent + 1)
                return
        await self._respond(encoding.racp_response(OP_REPORT, SUCCESS))

    async def _respond(self, value: bytes) -> None:
        await self._peripheral.send(self.characteristic, value, measurement=False)

    def _select(self, request: bytes) -> list[StoredRecord]:
        if len(request) < 2:
            raise _Refused(INVALID_OPERATOR)
        operator, operand = request[1], request[2:]
        records = sorted(self.records, key=lambda r: r.sequence)
        if operator == 0x00:
            raise _Refused(INVALID_OPERATOR)
        if operator in (0x01, 0x05, 0x06):
            if operand:
                raise _Refused(INVALID_OPERAND)
            if operator == 0x01:
                return records
            return records[:1] if operator == 0x05 else records[-1:]
        if operator not in (0x02, 0x03, 0x04):
            raise _Refused(OPERATOR_NOT_SUPPORTED)
        if not operand:
            raise _Refused(INVALID_OPERAND)
        if operand[0] != _FILTER_SEQUENCE:
            raise _Refused(OPERAND_NOT_SUPPORTED)
        expected = 5 if operator == 0x04 else 3
        if len(operand) != expected:
            raise _Refused(INVALID_OPERAND)
        if operator == 0x04:
            low, high = struct.unpack_from("<HH", operand, 1)
            if low > high:
                raise _Refused(INVALID_OPERAND)
        else:
            (bound,) = struct.unpack_from("<H", operand, 1)
            low, high = (0, bound) if operator == 0x02 else (bound, 0xFFFF)
        return [r for r in records if low <= r.sequence <= high]

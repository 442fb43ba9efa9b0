"""Emulated stored-record devices: a blood-pressure cuff and a glucose meter, both with RACP.

Both number their records with a 16-bit sequence number and hand them out through the Record
Access Control Point (:mod:`.racp`): the glucose meter as Glucose Measurement (+ Context)
notifications, the cuff (Blood Pressure Service 1.1 style) as Blood Pressure Record (0x2B36)
indications wrapping the 0x2A35 value. The cuff also indicates a measurement live when a central
is connected and listening at the time.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from bumble import gatt

from devices.ble.emulated import encoding
from devices.ble.emulated.numbering import RecordNumbering
from devices.ble.emulated.peripheral import EmulatedPeripheral, characteristic
from devices.ble.emulated.racp import RacpServer, StoredRecord

logger = logging.getLogger(__name__)

_PROPS = gatt.Characteristic.Properties
_NOW = timedelta(0)
_INTERMEDIATE_STEPS = (40.0, 90.0, 140.0)


class _RecordKeeper(EmulatedPeripheral):
    """Keeps the records its RACP hands out, numbered by a 16-bit sequence that wraps to 0.

    With ``numbering`` the numbering carries on from where the device stopped last time (as a
    real device's does across power cycles); without, it starts at ``first_sequence``.
    """

    def __init__(
        self,
        address: str,
        name: str,
        *,
        first_sequence: int = 1,
        numbering: RecordNumbering | None = None,
        **kwargs: Any,
    ) -> None:
        self.records: list[StoredRecord] = []
        self._numbering = numbering
        self.next_sequence = (
            first_sequence if numbering is None else numbering.next_sequence(address, first_sequence)
        )
        super().__init__(address, name, **kwargs)

    def _take_sequence(self) -> int:
        """The next record's sequence number."""
        sequence = self.next_sequence
        self.next_sequence = (sequence + 1) & 0xFFFF
        if self._numbering is not None:
            self._numbering.advance(self.address, self.next_sequence)
        return sequence


class BloodPressureCuff(_RecordKeeper):
    """Blood Pressure service (0x1810) with stored records behind a RACP."""

    SERVICE_UUID = 0x1810
    MODEL = "BP-5 upper arm"

    def build_services(self) -> list[gatt.Service]:
        self.measurement = characteristic(0x2A35, _PROPS.INDICATE)
        self.intermediate = characteristic(0x2A36, _PROPS.NOTIFY)
        feature = characteristic(0x2A49, _PROPS.READ, b"\x07\x00")
        self.record = characteristic(0x2B36, _PROPS.INDICATE)
        self.racp = RacpServer(self, self.records)
        return [
            gatt.Service(
                gatt.GATT_BLOOD_PRESSURE_SERVICE,
                [self.measurement, self.intermediate, feature, self.record, self.racp.characteristic],
            )
        ]

    async def measure(
        self, systolic: float, diastolic: float, pulse: float, *, status: int = 0,
        ago: timedelta = _NOW,
    ) -> int:
        """Take a measurement: store it, and indicate it live if a central listens. Returns its
        sequence number."""
        mean = float(round((systolic + 2 * diastolic) / 3))
        value = encoding.blood_pressure(
            systolic, diastolic, mean, at=self.clock.now() - ago, pulse=pulse, user_id=1, status=status
        )
        sequence = self._take_sequence()
        self.records.append(
            StoredRecord(sequence, ((self.record, encoding.blood_pressure_record(sequence, value)),))
        )
        if self.subscribed(self.measurement):
            for pressure in _INTERMEDIATE_STEPS:
                await self.send(
                    self.intermediate, encoding.intermediate_cuff_pressure(pressure), measurement=False
                )
            await self.send(self.measurement, value)
        return sequence


class GlucoseMeter(_RecordKeeper):
    """Glucose service (0x1808): records only through RACP, each optionally with a context."""

    SERVICE_UUID = 0x1808
    MODEL = "GM-6 strip meter"

    def build_services(self) -> list[gatt.Service]:
        self.measurement = characteristic(0x2A18, _PROPS.NOTIFY)
        self.context = characteristic(0x2A34, _PROPS.NOTIFY)
        feature = characteristic(0x2A51, _PROPS.READ, b"\x00\x04")
        self.racp = RacpServer(self, self.records)
        return [
            gatt.Service(
                gatt.GATT_GLUCOSE_SERVICE,
                [self.measurement, self.context, feature, self.racp.characteristic],
            )
        ]

    def measure(
        self, mg_dl: float, *, meal: int | None = None, status: int | None = None,
        ago: timedelta = _NOW,
    ) -> int:
        """Store a strip test (the meter never pushes it on its own). Returns its sequence."""
        sequence = self._take_sequence()
        value = encoding.glucose(
            sequence, self.clock.now() - ago, mg_dl, time_offset_min=0, status=status,
            context_follows=meal is not None,
        )
        values = [(self.measurement, value)]
        if meal is not None:
            values.append((self.context, encoding.glucose_context(sequence, meal=meal)))
        self.records.append(StoredRecord(sequence, tuple(values)))
        return sequence

    def add_raw_record(self, sequence: int, *values: bytes) -> None:
        """Store a record whose bytes the caller made (e.g. deliberately malformed)."""
        pairs = [(self.measurement, values[0])] + [(self.context, v) for v in values[1:]]
        self.records.append(StoredRecord(sequence, tuple(pairs)))

"""ORU^R01 (HL7 v2.6, IHE PCD-01 style) for one measurement: a reading, or a blood-pressure panel
with one OBX per component.

::

    MSH|^~\\&|RPM-INGEST|clinic|EHR|HOSPITAL|<now>||ORU^R01^ORU_R01|<MSH-10>|P|2.6|||AL|NE||
        UNICODE UTF-8|||IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO
    PID|||<MRN>^^^<authority>^MR||<family>^<given>
    OBR|1||<MSH-10>^RPM-INGEST|<MDC>^<refid>^MDC^<LOINC>^<display>^LN|||<measured at>
    OBX|1|NM|<MDC>^<refid>^MDC^<LOINC>^<display>^LN||<value>|<UCUM>^<UCUM>^UCUM|||||R|||
        <measured at>|||<device id>^RPM-INGEST

Pure: the time of the message is passed in, values are canonical (already converted to the
catalogue's UCUM unit by ``devices.units`` at ingest).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Final

import hl7

from devices.catalogue import BP_COMPONENTS
from hl7_export.codes import BP_PANEL, Coding, MetricCodes
from hl7_export.er7 import SegmentBuilder, assemble, new_message
from hl7_export.errors import MappingError
from hl7_export.escaping import escape
from hl7_export.models import Header, OruItem, PatientRef
from hl7_export.timestamps import format_dtm

VERSION: Final = "2.6"
# IHE PCD-01 message profile (IHE PCD Technical Framework vol. 2, MSH-21).
PCD01_PROFILE: Final = ("IHE_PCD_001", "IHE PCD", "1.3.6.1.4.1.19376.1.6.1.1.1", "ISO")


def split_name(display_name: str) -> tuple[str, str]:
    """(family, given) from the display name: ``"Family, Given"`` or ``"Given … Family"``."""
    name = display_name.strip()
    if "," in name:
        family, _, given = name.partition(",")
        return family.strip(), given.strip()
    given, _, family = name.rpartition(" ")
    return (family, given) if family else (name, "")


def format_number(value: float) -> str:
    """An NM value: plain decimal notation, no exponent, no trailing zeros (``120``, ``36.85``)."""
    text = format(Decimal(repr(float(value))), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


class OruBuilder:
    """Builds ORU^R01 messages with one header configuration and one code table."""

    def __init__(self, header: Header, codes: Mapping[str, MetricCodes]) -> None:
        self.header = header
        self.codes = codes
        # What never changes between messages, escaped once.
        self._coded = {metric: _cwe(c.coding) for metric, c in codes.items()}
        self._panel = _cwe(BP_PANEL)

    def build(
        self, item: OruItem, control_id: str, now: datetime, *, sending_facility: str | None = None
    ) -> hl7.Message:
        """The message for ``item``; ``sending_facility`` overrides the header's MSH-4."""
        if not item.readings:
            raise MappingError("nothing to send: the item has no readings")
        measured_at = item.readings[0].measured_at
        codes = [self._codes(reading.metric) for reading in item.readings]
        is_panel = len(item.readings) > 1 or item.readings[0].metric in BP_COMPONENTS
        order_code = self._panel if is_panel else self._coded[codes[0].metric]
        msg = new_message()
        segments = [
            self._msh(msg, control_id, now, sending_facility or self.header.sending_facility),
            self._pid(msg, item.patient),
            SegmentBuilder(msg, "OBR")
            .set(1, "1")
            .set(3, control_id, self.header.sending_application)
            .set_raw(4, *order_code)
            .set_raw(7, format_dtm(measured_at)),
        ]
        for n, (reading, code) in enumerate(zip(item.readings, codes, strict=True), start=1):
            if reading.unit != code.ucum_unit:
                raise MappingError(
                    f"{reading.metric} is stored in {reading.unit!r}, the catalogue says {code.ucum_unit!r}"
                )
            segments.append(
                SegmentBuilder(msg, "OBX")
                .set(1, str(n))
                .set(2, "NM")
                .set_raw(3, *self._coded[code.metric])
                .set(4, f"1.{n}" if is_panel else "")
                .set_raw(5, format_number(reading.value))
                .set(6, code.ucum_unit, code.ucum_unit, "UCUM")
                .set(11, "R")
                .set_raw(14, format_dtm(reading.measured_at))
                .set(18, item.device.device_id, self.header.sending_application)
            )
        return assemble(msg, segments)

    def _codes(self, metric: str) -> MetricCodes:
        try:
            return self.codes[metric]
        except KeyError:
            raise MappingError(f"metric {metric!r} is not in the catalogue") from None

    def _msh(self, msg: hl7.Message, control_id: str, now: datetime, facility: str) -> SegmentBuilder:
        h = self.header
        return (
            SegmentBuilder(msg, "MSH")
            .set(3, h.sending_application)
            .set(4, facility)
            .set(5, h.receiving_application)
            .set(6, h.receiving_facility)
            .set_raw(7, format_dtm(now))
            .set_raw(9, "ORU", "R01", "ORU_R01")
            .set(10, control_id)
            .set(11, "P")
            .set(12, VERSION)
            .set(15, "AL")
            .set(16, "NE")
            .set(18, "UNICODE UTF-8")
            .set(21, *PCD01_PROFILE)
        )

    def _pid(self, msg: hl7.Message, patient: PatientRef) -> SegmentBuilder:
        family, given = split_name(patient.display_name)
        return (
            SegmentBuilder(msg, "PID")
            .set(3, patient.mrn, "", "", self.header.mrn_authority, "MR")
            .set(5, family, given)
        )


def _cwe(coding: Coding) -> tuple[str, ...]:
    return tuple(
        escape(part)
        for part in (
            coding.code, coding.text, coding.system, coding.alt_code, coding.alt_text, coding.alt_system
        )
    )  # fmt: skip

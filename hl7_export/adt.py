"""Inbound ADT (contract §4): the events we apply, read from an ER7 message into a frozen value.

``A01``/``A04`` register (or update), ``A08`` updates, ``A03`` ends monitoring, ``A40`` merges
``MRG-1`` into ``PID-3``. Raises :class:`MessageRejected` (answer ``AR``) for what is not a
parseable ADT of those types, :class:`MessageError` (answer ``AE``) for one that lacks what its
event needs. Pure: applying it is the service's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

import hl7

from hl7_export.errors import MessageError, MessageRejected
from hl7_export.timestamps import parse_dtm

SUPPORTED: Final = ("A01", "A04", "A08", "A03", "A40")
MAX_MRN: Final = 64
MAX_NAME: Final = 200


@dataclass(frozen=True, slots=True)
class AdtMessage:
    control_id: str  # MSH-10
    event: str  # A01, A04, A08, A03, A40
    mrn: str  # PID-3.1 (the survivor for A40)
    display_name: str  # "Given Family" from PID-5, "" when absent
    prior_mrn: str = ""  # MRG-1.1 (A40)
    event_time: datetime | None = None  # EVN-6, else EVN-2, else MSH-7


def parse_adt(text: str, *, mrn_authority: str = "") -> tuple[hl7.Message, AdtMessage]:
    """The parsed message and what it asks for."""
    try:
        message = hl7.parse(text.strip("\r\n") + "\r")
        msh = message.segment("MSH")
    except (KeyError, IndexError, ValueError, hl7.ParseException):
        raise MessageRejected("not an HL7 v2 message (no MSH segment)") from None
    except Exception as exc:  # noqa: BLE001 - python-hl7 raises bare errors on odd input
        raise MessageRejected(f"unparseable message ({type(exc).__name__})") from None
    control_id = _get(msh, 10)
    kind, event = _get(msh, 9, 1).upper(), _get(msh, 9, 2).upper()
    if not control_id:
        raise MessageRejected("MSH-10 (message control id) is empty")
    if kind != "ADT":
        raise MessageRejected(f"message type {kind[:20]!r} is not supported (ADT only)", "200")
    if event not in SUPPORTED:
        raise MessageRejected(f"ADT event {event[:20]!r} is not supported ({', '.join(SUPPORTED)})", "201")
    pid = _segment(message, "PID")
    if pid is None:
        raise MessageError("no PID segment", "100")
    mrn = _mrn(pid, mrn_authority)
    given, family = _get(pid, 5, 2), _get(pid, 5, 1)
    name = " ".join(part for part in (given.strip(), family.strip()) if part)
    if len(name) > MAX_NAME:
        raise MessageError(f"PID-5 name is longer than {MAX_NAME} characters", "102")
    if event in ("A01", "A04") and not name:
        raise MessageError("PID-5 (patient name) is required to register a patient", "101")
    prior = ""
    if event == "A40":
        mrg = _segment(message, "MRG")
        prior = _get(mrg, 1).strip() if mrg is not None else ""
        if not prior:
            raise MessageError("MRG-1 (prior patient identifier) is required for A40", "101")
        if len(prior) > MAX_MRN:
            raise MessageError(f"MRG-1 is longer than {MAX_MRN} characters", "102")
        if prior == mrn:
            raise MessageError("MRG-1 and PID-3 name the same patient", "102")
    evn = _segment(message, "EVN")
    when = None
    if evn is not None:
        when = parse_dtm(_get(evn, 6)) or parse_dtm(_get(evn, 2))
    when = when or parse_dtm(_get(msh, 7))
    return message, AdtMessage(control_id[:199], event, mrn, name, prior, when)


def _mrn(pid: hl7.Segment, authority: str) -> str:
    """PID-3: the repetition assigned by ``authority`` (any repetition when none is configured)."""
    field = pid(3) if len(pid) > 3 else ""
    repetitions = max(1, len(field)) if isinstance(field, hl7.Field) else 1
    for n in range(1, repetitions + 1):
        value = _get(pid, 3, 1, n).strip()
        if value and (not authority or _get(pid, 3, 4, n).strip() == authority):
            if len(value) > MAX_MRN:
                raise MessageError(f"PID-3 is longer than {MAX_MRN} characters", "102")
            return value
    raise MessageError(
        "PID-3 has no patient identifier" + (f" assigned by {authority}" if authority else ""), "101"
    )


def _segment(message: hl7.Message, name: str) -> hl7.Segment | None:
    for segment in message:
        if str(segment[0]) == name:
            return segment
    return None


def _get(segment: hl7.Segment | None, field: int, component: int = 1, repeat: int = 1) -> str:
    if segment is None:
        return ""
    try:
        return str(segment.extract_field(1, field, repeat, component))
    except (IndexError, ValueError, TypeError):
        return ""

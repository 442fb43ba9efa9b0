"""Acknowledgements: reading the ACK a receiver sends for our ORU, and building the ACK we send
for an inbound ADT (contract §4: ``MSA-2`` = the message's ``MSH-10``, an ``ERR`` segment with
``AE``/``AR``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Final

import hl7

from hl7_export.er7 import SegmentBuilder, assemble, new_message
from hl7_export.errors import AckError
from hl7_export.escaping import unescape
from hl7_export.models import Header
from hl7_export.timestamps import format_dtm

MAX_REASON: Final = 2000


class Outcome(Enum):
    """What an acknowledgement means for the row that was sent."""

    ACCEPTED = "accepted"  # AA, CA: the receiver has it
    RETRY = "retry"  # AE, CE: it could not take it now; send the same message again later
    REJECTED = "rejected"  # AR, CR: it will never take it; park with the reason


_OUTCOMES: Final = {
    "AA": Outcome.ACCEPTED, "CA": Outcome.ACCEPTED,
    "AE": Outcome.RETRY, "CE": Outcome.RETRY,
    "AR": Outcome.REJECTED, "CR": Outcome.REJECTED,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Ack:
    code: str  # MSA-1
    control_id: str  # MSA-2: the MSH-10 it acknowledges
    text: str  # MSA-3 and the ERR segments' texts, for a reason a person reads

    @property
    def outcome(self) -> Outcome:
        return _OUTCOMES[self.code]


def parse_ack(text: str) -> Ack:
    """The acknowledgement in ``text``; :class:`AckError` when it is none.

    The common answer, a plain ``AA``/``CA`` without a text, is read from its MSA segment with the
    delimiters its own MSH declares (one is read per message sent, so this is the sender's hot
    path); anything else is parsed whole by python-hl7 to collect the MSA and ERR texts.
    """
    accepted = _plain_accept(text)
    return accepted if accepted is not None else _parse_whole(text)


def _parse_whole(text: str) -> Ack:
    try:
        message = hl7.parse(text.strip("\r\n") + "\r")
        msa = message.segment("MSA")
    except (KeyError, IndexError, ValueError, hl7.ParseException) as exc:
        raise AckError(f"not an HL7 acknowledgement: {type(exc).__name__}") from None
    code = _field(msa, 1).upper()
    if code not in _OUTCOMES:
        raise AckError(f"MSA-1 {code[:10]!r} is not an acknowledgement code")
    texts = [_field(msa, 3)]
    for err in message.segments("ERR") if _has(message, "ERR") else ():
        # ERR-8 user message, ERR-7 diagnostic information, ERR-3 the error code's text
        texts += [_field(err, 8), _field(err, 7), _field(err, 3, 2), _field(err, 1, 4, 2)]
    reason = "; ".join(dict.fromkeys(t for t in texts if t))
    return Ack(code, _field(msa, 2), reason[:MAX_REASON])


def _plain_accept(text: str) -> Ack | None:
    """An ``AA``/``CA`` with no MSA-3 and no ERR segment, else ``None`` (read it the long way)."""
    if not text.startswith("MSH") or len(text) < 8:
        return None
    field_sep, component_sep, escape = text[3], text[4], text[6]
    segments = text.replace("\n", "\r").split("\r")
    if any(segment.startswith("ERR") for segment in segments):
        return None
    for segment in segments:
        if segment.startswith("MSA" + field_sep):
            fields = segment.split(field_sep)
            code = fields[1].split(component_sep)[0].upper() if len(fields) > 1 else ""
            control_id = fields[2].split(component_sep)[0] if len(fields) > 2 else ""
            if code not in ("AA", "CA") or (len(fields) > 3 and fields[3]) or escape in control_id:
                return None
            return Ack(code, control_id, "")
    return None


def _has(message: hl7.Message, name: str) -> bool:
    return any(str(segment[0]) == name for segment in message)


def _field(segment: hl7.Segment, field: int, component: int = 1, sub: int = 1) -> str:
    try:
        if sub > 1:
            return str(segment.extract_field(1, field, 1, sub, 1))
        return str(segment.extract_field(1, field, 1, component))
    except IndexError:
        return ""


@dataclass(frozen=True, slots=True)
class AckAnswer:
    """What we answer an inbound message: code, reason and the ERR-3 condition (table 0357)."""

    code: str
    reason: str = ""
    error_code: str = ""


ERROR_TEXTS: Final = {
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}


def build_ack(
    answer: AckAnswer,
    *,
    header: Header,
    control_id: str,
    now: datetime,
    incoming: str = "",
) -> hl7.Message:
    """The ACK for one inbound message. ``incoming`` is its text, read leniently (it may not
    parse): its MSH gives MSA-2 (its MSH-10), the trigger event, the version and whom to answer;
    without an MSH, MSA-2 stays empty."""
    theirs = msh_values(incoming)
    msg = new_message()
    segments = [
        SegmentBuilder(msg, "MSH")
        .set(3, header.sending_application)
        .set(4, header.sending_facility)
        .set(5, theirs.get(3, ""))
        .set(6, theirs.get(4, ""))
        .set_raw(7, format_dtm(now))
        .set(9, "ACK", theirs.get(9, ""), "ACK")
        .set(10, control_id)
        .set(11, "P")
        .set(12, theirs.get(12, "") or "2.6"),
        SegmentBuilder(msg, "MSA").set(1, answer.code).set(2, theirs.get(10, "")).set(3, answer.reason[:80]),
    ]
    if answer.code != "AA":
        code = answer.error_code or "207"
        segments.append(
            SegmentBuilder(msg, "ERR")
            .set(3, code, ERROR_TEXTS.get(code, ""), "HL70357")
            .set(4, "E")
            .set(8, answer.reason[:MAX_REASON])
        )
    return assemble(msg, segments)


def msh_values(text: str) -> dict[int, str]:
    """MSH-3, -4, -9 (its trigger event), -10 and -12 of a message that may be broken, each the
    first component, unescaped and bounded: enough to address an answer."""
    first = text.lstrip("\r\n").split("\r", 1)[0].split("\n", 1)[0]
    if not first.startswith("MSH") or len(first) < 8:
        return {}
    sep, encoding = first[3], first[4:8]
    fields = first.split(sep)
    values: dict[int, str] = {}
    for number in (3, 4, 9, 10, 12):
        if number - 1 < len(fields):  # fields[0] is "MSH", fields[1] MSH-2: MSH-n is fields[n - 1]
            components = fields[number - 1].split(encoding[0])
            value = components[1] if number == 9 and len(components) > 1 else components[0]
            values[number] = unescape(value)[:199] if sep == "|" and encoding == "^~\\&" else value[:199]
    return values

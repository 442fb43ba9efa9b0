"""Reading inbound ADT: what each event asks for, and what is rejected (AR) or in error (AE)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from hl7_export import MessageError, MessageRejected, parse_adt

MSH = "MSH|^~\\&|EPIC|HOSP|RPM|CLINIC|20260301120000||ADT^{event}^ADT_A01|CTL-{event}|P|2.5\r"


def adt(event: str, *segments: str) -> str:
    return MSH.format(event=event) + "".join(s + "\r" for s in segments)


def test_a01_registers_with_escaped_name_and_event_time() -> None:
    _, m = parse_adt(
        adt("A01", "EVN|A01|20260301113000-0500", "PID|||MRN-1^^^HOSP^MR||O\\F\\Neil^Ann\\S\\Marie")
    )
    assert (m.control_id, m.event, m.mrn, m.display_name) == ("CTL-A01", "A01", "MRN-1", "Ann^Marie O|Neil")
    assert m.event_time == datetime(2026, 3, 1, 11, 30, tzinfo=timezone(timedelta(hours=-5)))


def test_pid_3_repetition_of_the_configured_authority() -> None:
    text = adt("A04", "PID|||111^^^OTHER^MR~222^^^HOSP^MR||Doe^Jane")
    assert parse_adt(text, mrn_authority="HOSP")[1].mrn == "222"
    assert parse_adt(text)[1].mrn == "111"
    with pytest.raises(MessageError, match="assigned by NOPE"):
        parse_adt(text, mrn_authority="NOPE")


def test_a40_reads_mrg_1() -> None:
    _, m = parse_adt(adt("A40", "EVN|A40", "PID|||SURV||Doe^Jane", "MRG|OLD^^^HOSP"))
    assert (m.mrn, m.prior_mrn, m.event_time) == ("SURV", "OLD", datetime(2026, 3, 1, 12, tzinfo=UTC))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "not an HL7"),
        ("garbage\x00\xff", "not an HL7"),
        ("PID|||1\r", "not an HL7"),
        ("MSH|^~\\&|E||||||ORU^R01|C1\r", "type 'ORU' is not supported"),
        ("MSH|^~\\&|E||||||ADT^A02|C1\r", "event 'A02' is not supported"),
        ("MSH|^~\\&|E||||||ADT^A01|\rPID|||1||x\r", "MSH-10"),
    ],
)
def test_rejected(text: str, match: str) -> None:
    with pytest.raises(MessageRejected, match=match) as err:
        parse_adt(text)
    assert err.value.code == {"type": "200", "event": "201"}.get(match.split()[0], "100")


@pytest.mark.parametrize(
    ("text", "match", "code"),
    [
        (adt("A01"), "no PID", "100"),
        (adt("A01", "PID|||"), "PID-3", "101"),
        (adt("A01", "PID|||1"), "PID-5", "101"),
        (adt("A01", "PID|||" + "9" * 65 + "||x"), "longer than 64", "102"),
        (adt("A08", "PID|||1||" + "x" * 201), "longer than 200", "102"),
        (adt("A40", "PID|||1"), "MRG-1", "101"),
        (adt("A40", "PID|||1", "MRG|1"), "same patient", "102"),
    ],
)
def test_in_error(text: str, match: str, code: str) -> None:
    with pytest.raises(MessageError, match=match) as err:
        parse_adt(text)
    assert err.value.code == code

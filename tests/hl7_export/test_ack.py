"""Reading the receiver's ACK, and the ACKs we answer ADT with (validated by hl7apy)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from hl7_export import AckAnswer, AckError, Header, Outcome, build_ack, msh_values, parse_ack
from hl7_export.ack import _parse_whole, _plain_accept

NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
ADT = "MSH|^~\\&|EPIC|HOSP|RPM|CLINIC|20260301||ADT^A08^ADT_A01|CTL-9|P|2.5\rEVN|A08\rPID|||123\r"


@pytest.mark.parametrize(
    ("text", "code", "outcome", "reason"),
    [
        ("MSH|^~\\&|E||||||ACK|1|P|2.6\rMSA|AA|C1\r", "AA", Outcome.ACCEPTED, ""),
        ("MSH|^~\\&|E||||||ACK|1|P|2.6\rMSA|CA|C1\r", "CA", Outcome.ACCEPTED, ""),
        ("MSH|^~\\&|E||||||ACK|1|P|2.6\rMSA|AE|C1|busy\r", "AE", Outcome.RETRY, "busy"),
        ("MSH|^~\\&|E||||||ACK|1|P|2.6\rMSA|CE|C1\r", "CE", Outcome.RETRY, ""),
        (
            "MSH|^~\\&|E||||||ACK|1|P|2.6\rMSA|AR|C1\r"
            "ERR|||204^Unknown key identifier^HL70357|E||||No MRN 12\r",
            "AR", Outcome.REJECTED, "No MRN 12; Unknown key identifier",
        ),
        ("MSH|^~\\&|E||||||ACK|1|P|2.6\rMSA|cr|C1\r", "CR", Outcome.REJECTED, ""),
        # segments ended by \n, as some engines do
        ("MSH|^~\\&|E||||||ACK|1|P|2.6\nMSA|AA|C1\n", "AA", Outcome.ACCEPTED, ""),
    ],
)  # fmt: skip
def test_acknowledgements(text: str, code: str, outcome: Outcome, reason: str) -> None:
    ack = parse_ack(text.replace("\n", "\r"))
    assert (ack.code, ack.control_id, ack.outcome, ack.text) == (code, "C1", outcome, reason)


@pytest.mark.parametrize(
    "text", ["", "garbage", "MSH|^~\\&|E||||||ACK|1\r", "MSH|^~\\&|E||||||ACK|1\rMSA|XX|C1\r", "MSA|AA|C1\r"]
)
def test_what_is_not_an_acknowledgement(text: str) -> None:
    with pytest.raises(AckError):
        parse_ack(text)


@pytest.mark.parametrize("code", ["AA", "AE", "AR"])
def test_our_ack_is_valid_and_names_the_message(code: str) -> None:
    answer = AckAnswer(code, "" if code == "AA" else "no patient with MRN 'x|y'", "204")
    text = str(
        build_ack(answer, header=Header(sending_facility="c1"), control_id="A1", now=NOW, incoming=ADT)
    )
    m = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT)
    assert m.validate()
    assert m.msh.msh_9.to_er7() == "ACK^A08^ACK"
    assert (m.msh.msh_5.value, m.msh.msh_6.value, m.msh.msh_12.value) == ("EPIC", "HOSP", "2.5")
    assert (m.msa.msa_1.value, m.msa.msa_2.value) == (code, "CTL-9")
    if code == "AA":
        assert "ERR" not in text
    else:
        assert m.err.err_3.to_er7() == "204^Unknown key identifier^HL70357"
        assert m.err.err_8.to_er7() == "no patient with MRN 'x\\F\\y'"


def test_an_ack_for_what_did_not_parse_has_an_empty_msa_2() -> None:
    text = str(
        build_ack(AckAnswer("AR", "not HL7"), header=Header(), control_id="A2", now=NOW, incoming="\x00junk")
    )
    m = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT)
    assert (m.msa.msa_1.value, m.msa.msa_2.value) == ("AR", "")


def test_msh_values_of_broken_messages() -> None:
    assert msh_values(ADT) == {3: "EPIC", 4: "HOSP", 9: "A08", 10: "CTL-9", 12: "2.5"}
    assert msh_values("MSH|^~\\&|A") == {3: "A"}
    assert msh_values("PID|||1") == {}
    assert msh_values("MSH") == {}


@pytest.mark.parametrize(
    "text",
    [
        "MSH|^~\\&|E||||||ACK|1|P|2.6\rMSA|AA|C1\r",
        "MSH|^~\\&|E||||||ACK|1|P|2.6\rMSA|ca|C1\r",
        "MSH|^~\\&|E||||||ACK|1|P|2.6\rMSA|AA|C1^X\r",
        "MSH|^~\\&|E||||||ACK|1|P|2.6\rMSA|AA|C\\F\\1\r",
        "MSH|^~\\&|E||||||ACK|1|P|2.6\rMSA|AA|C1|all good\r",
        "MSH|^~\\&|E||||||ACK|1|P|2.6\rMSA|AA|C1\rERR|||0^Message accepted^HL70357|I\r",
        "MSH#^~\\&#E######ACK#1#P#2.6\rMSA#AA#C1\r",
        "MSH|^~\\&|E||||||ACK|1|P|2.6\nMSA|AA|C1\n",
    ],
)
def test_the_quick_read_of_a_plain_accept_agrees_with_the_full_parse(text: str) -> None:
    quick = _plain_accept(text)
    whole = _parse_whole(text.replace("\n", "\r"))
    assert parse_ack(text) == (quick or whole)
    if quick is not None:
        assert quick == whole
    assert (quick is None) == ("ERR" in text or "all good" in text or "\\F\\" in text)

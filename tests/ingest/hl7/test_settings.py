"""RPM_HL7_* settings: refused when malformed, and an hl7 outbox row per reading only while
RPM_HL7_MLLP_URL is set."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ingest.export.destinations import reading_destinations
from ingest.settings import Settings


def make(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_valid() -> None:
    s = make(hl7_mllp_url="mllp://engine.example:6661", hl7_listen="0.0.0.0:2575")
    assert (s.hl7_mllp_url, s.hl7_listen) == ("mllp://engine.example:6661", "0.0.0.0:2575")
    assert make(hl7_mllp_url=" ", hl7_listen="").hl7_mllp_url is None


@pytest.mark.parametrize(
    "values",
    [
        {"hl7_mllp_url": "tcp://engine:6661"},
        {"hl7_mllp_url": "mllp://engine"},
        {"hl7_mllp_url": "mllp://engine:70000"},
        {"hl7_mllp_url": "mllp://engine:6661/path"},
        {"hl7_listen": "2575"},
        {"hl7_listen": "host:port"},
        {"hl7_listen": "host:99999"},
        {"hl7_adt_clinic": "no spaces"},
        {"hl7_ack_timeout_s": 0},
    ],
)
def test_refused(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        make(**values)


def test_reading_destinations() -> None:
    assert reading_destinations(make()) == ("fhir",)
    assert reading_destinations(make(hl7_mllp_url="mllp://127.0.0.1:6661")) == ("fhir", "hl7")

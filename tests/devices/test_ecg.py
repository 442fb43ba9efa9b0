"""The ECG strip model and its wire validation (docs/contract/ehr-interop.md §5)."""

from __future__ import annotations

import math
import os
import random
import sys
from array import array
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from devices.ecg import (
    LEAD_NAMES,
    EcgStrip,
    decode_samples,
    encode_samples,
    strip_from_wire,
    strip_id,
    strip_to_wire,
)
from devices.errors import InvalidReading

AT = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def wire(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"sample_rate_hz": 300, "unit": "uV", "leads": {"I": [12, 15, 18]}}
    body.update(fields)
    return body


def parse(body: dict[str, Any]) -> EcgStrip:
    return strip_from_wire(body, device_id="ecg-1", measured_at=AT)


def test_lead_names_are_the_12_lead_set_in_order() -> None:
    # literal: pins the contract's names instead of importing them
    assert LEAD_NAMES == ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


def test_the_contract_example_parses_whole() -> None:
    strip = parse(wire(interpretation="sinus_rhythm"))
    assert strip == EcgStrip("ecg-1", AT, 300.0, {"I": array("h", [12, 15, 18])}, "sinus_rhythm")
    assert strip.unit == "uV"
    assert strip.key == ("ecg-1", "ecg", AT)
    assert strip.sample_count == 3
    assert strip.duration_s == pytest.approx(0.01)


def test_millivolts_become_integer_microvolts_and_leads_take_12_lead_order() -> None:
    strip = parse(wire(unit="mV", leads={"V1": [0.5, -0.25], "II": [1.2345, 0], "I": [-1, 2]}))
    assert strip.lead_names == ("I", "II", "V1")
    assert strip.leads == {
        "I": array("h", [-1000, 2000]),
        "II": array("h", [1234, 0]),  # rounded to the nearest µV (1234.5 -> banker's rounding)
        "V1": array("h", [500, -250]),
    }


def test_sixty_seconds_of_six_leads_at_1000_hz_is_accepted() -> None:
    leads = {name: [0] * 60_000 for name in LEAD_NAMES[:6]}
    strip = parse(wire(sample_rate_hz=1000, leads=leads))
    assert strip.duration_s == 60.0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (wire(sample_rate_hz=99), "sample_rate_hz 99 is out of range"),
        (wire(sample_rate_hz=1001), "sample_rate_hz 1001 is out of range"),
        (wire(sample_rate_hz="300"), "sample_rate_hz must be a number"),
        (wire(sample_rate_hz=True), "sample_rate_hz must be a number"),
        (wire(sample_rate_hz=None), "sample_rate_hz must be a number"),
        (wire(unit="V"), "ECG unit 'V' is not supported"),
        (wire(unit=None), "ECG unit null is not supported"),
        (wire(leads=None), "needs 'leads'"),
        (wire(leads=[[1, 2]]), "needs 'leads'"),
        (wire(leads={}), "1 to 12 leads"),
        (wire(leads={"I": [1], "X": [1]}), "unknown lead name(s) 'X'"),
        (wire(leads={"i": [1]}), "unknown lead name(s) 'i'"),
        (wire(leads={"I": [1, 2], "II": [1]}), "unequal lengths (I 2, II 1 samples)"),
        (wire(leads={"I": []}), "no samples"),
        (wire(leads={"I": "12,15"}), "lead I: samples must be an array"),
        (wire(sample_rate_hz=100, leads={"I": [0] * 6001}), "at most 60 s"),
        (wire(leads={"I": [1, 2.5]}), "lead I: sample 1 is 2.5, not an integer"),
        (wire(leads={"I": [1, math.nan]}), "lead I: sample 1 is nan, not a finite number"),
        (wire(unit="mV", leads={"I": [math.inf]}), "sample 0 is inf, not a finite number"),
        (wire(leads={"I": [1, "2"]}), "lead I: sample 1 is a string, not a number"),
        (wire(leads={"I": [None]}), "sample 0 is null, not a number"),
        (wire(leads={"I": [True]}), "sample 0 is a boolean, not a number"),
        (wire(unit="mV", leads={"I": [False]}), "sample 0 is a boolean, not a number"),
        (wire(leads={"I": [[1]]}), "sample 0 is an array, not a number"),
        (wire(leads={"I": [32768]}), "sample 0 is 32768 uV, outside ±32767 µV"),
        (wire(unit="mV", leads={"I": [-33]}), "sample 0 is -33 mV, outside ±32767 µV"),
        (wire(leads={"I": [10**30]}), "outside ±32767 µV"),
        (wire(interpretation=""), "interpretation must be a non-empty string"),
        (wire(interpretation=7), "interpretation must be a non-empty string"),
        (wire(interpretation="x" * 501), "at most 500"),
        (wire(interpretation="af\r\nInjected"), "control characters"),
    ],
)
def test_bad_strips_are_refused_with_their_reason(body: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidReading) as caught:
        parse(body)
    assert reason in caught.value.reason


def test_thirteen_leads_are_refused() -> None:
    with pytest.raises(InvalidReading, match="at most 12 leads"):
        EcgStrip("d", AT, 300, {f"L{i}": array("h", [1]) for i in range(13)})


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(InvalidReading, match="timezone-aware"):
        EcgStrip("d", AT.replace(tzinfo=None), 300, {"I": array("h", [1])})


def test_leads_out_of_12_lead_order_are_refused_by_the_model() -> None:
    with pytest.raises(InvalidReading, match="12-lead order"):
        EcgStrip("d", AT, 300, {"II": array("h", [1]), "I": array("h", [1])})


def test_stored_form_round_trips_and_is_little_endian_int16() -> None:
    strip = parse(wire(leads={"I": [1, -2], "aVF": [256, 32767]}))
    blob = encode_samples(strip)
    assert blob == bytes.fromhex("0100feff0001ff7f")
    assert decode_samples(blob, ("I", "aVF"), 2) == strip.leads
    with pytest.raises(InvalidReading, match="expected 8"):
        decode_samples(blob[:-1], ("I", "aVF"), 2)


def test_strip_id_is_derived_from_the_identity_in_any_offset() -> None:
    local = AT.astimezone(timezone(timedelta(hours=2)))
    assert strip_id("ecg-1", AT) == strip_id("ecg-1", local)
    assert strip_id("ecg-1", AT) != strip_id("ecg-2", AT)
    assert strip_id("ecg-1", AT) != strip_id("ecg-1", AT + timedelta(milliseconds=1))
    assert parse(wire()).id == strip_id("ecg-1", AT)


def _mutant(rng: random.Random) -> Any:
    """A random value of a JSON type, or a hostile number."""
    return rng.choice(
        [
            None, True, False, 0, -1, 1.5, 2**70, -(2**70), math.nan, math.inf, "", "I", "300", "uV",
            [], [1, 2], {}, {"I": [1]}, [[1]], 1e308, 10**400, -0.0, 32767, -32768, 32768, "\u0000",
        ]
    )  # fmt: skip


def test_fuzz_only_invalid_reading_comes_out() -> None:
    seed = int(os.environ.get("RPM_FUZZ_SEED", random.randrange(2**32)))
    print(f"ECG fuzz seed {seed} (set RPM_FUZZ_SEED to reproduce)", file=sys.stderr)  # noqa: T201
    rng = random.Random(seed)
    accepted = refused = 0
    for _ in range(3000):
        body: dict[str, Any] = {
            "sample_rate_hz": rng.choice([100, 300, 500, 1000, 99.5]),
            "unit": rng.choice(["uV", "mV"]),
            "leads": {name: [rng.randint(-2000, 2000) for _ in range(rng.randint(1, 50))]
                      for name in rng.sample(LEAD_NAMES, rng.randint(1, 3))},
        }  # fmt: skip
        for _ in range(rng.randint(0, 3)):
            where = rng.random()
            if where < 0.3:
                body[rng.choice(["sample_rate_hz", "unit", "leads", "interpretation"])] = _mutant(rng)
            elif isinstance(body.get("leads"), dict) and body["leads"]:
                lead = rng.choice(list(body["leads"]))
                samples = body["leads"][lead]
                if where < 0.6 and isinstance(samples, list) and samples:
                    samples[rng.randrange(len(samples))] = _mutant(rng)
                elif where < 0.8:
                    body["leads"][rng.choice(["X", "avr", "V7", "I", ""])] = _mutant(rng)
                else:
                    body["leads"][lead] = _mutant(rng)
        try:
            strip = parse(body)
        except InvalidReading as exc:
            assert exc.reason
            refused += 1
        else:
            assert all(len(s) == strip.sample_count for s in strip.leads.values())
            accepted += 1
    assert accepted and refused


def test_an_integer_rate_is_kept_as_a_float_and_goes_back_to_the_wire_whole() -> None:
    strip = EcgStrip("ecg-1", AT, 300, {"I": array("h", [1, 2])})
    assert type(strip.sample_rate_hz) is float
    wire = strip_to_wire(strip)
    assert wire["sample_rate_hz"] == 300 and type(wire["sample_rate_hz"]) is int
    assert wire == {"device_id": "ecg-1", "metric": "ecg", "measured_at": "2026-12-01T08:00:00Z",
                    "sample_rate_hz": 300, "unit": "uV", "leads": {"I": [1, 2]}}  # fmt: skip
    assert parse({k: v for k, v in wire.items() if k != "device_id"}) == strip

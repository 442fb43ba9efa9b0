"""ECG strips: the waveform reading (``"metric": "ecg"``) and its validation, pure.

A strip is not one number but up to twelve leads of samples, so it has a model of its own
(:class:`EcgStrip`) beside :class:`devices.models.Reading`. It shares a reading's identity
(device, ``ecg``, measured_at) and travels in the same messages (``docs/contract/ehr-interop.md``
§5). Samples are always held as integer microvolts in a signed 16-bit array: every plausible
surface ECG fits (±32.767 mV), a 60 s six-lead strip at 500 Hz is 360 kB, and the stored form
(:func:`encode_samples`) is the same bytes.

No I/O and no clock; every refusal is :class:`devices.errors.InvalidReading` with a reason
a device maker can act on.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Final
from uuid import UUID, uuid5

from devices.errors import InvalidReading

METRIC: Final = "ecg"
# The 12-lead set in its conventional order; strips keep their leads in this order.
LEAD_NAMES: Final = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
LEAD_ORDER: Final = {name: i for i, name in enumerate(LEAD_NAMES)}
# Each lead's channel in IEEE 11073-10101 (MDC_ECG_ELEC_POTL_<lead>: partition 2, the electric
# potential block at 256 + the lead's term code of DICOM CID 3001 "ECG Lead"): the context-free
# code (2 * 65536 + 256 + term) and its reference id. Used by the FHIR export's components.
LEAD_MDC: Final[dict[str, tuple[str, str]]] = {
    name: (str(2 * 65536 + 256 + term), f"MDC_ECG_ELEC_POTL_{name.upper()}")
    for name, term in (
        ("I", 1), ("II", 2), ("III", 61), ("aVR", 62), ("aVL", 63), ("aVF", 64),
        ("V1", 3), ("V2", 4), ("V3", 5), ("V4", 6), ("V5", 7), ("V6", 8),
    )
}  # fmt: skip
MIN_RATE_HZ: Final = 100.0
MAX_RATE_HZ: Final = 1000.0
MAX_DURATION_S: Final = 60.0
# Signed 16-bit microvolts: the stored sample type.
SAMPLE_MIN_UV: Final = -32768
SAMPLE_MAX_UV: Final = 32767
# Wire unit -> microvolts per unit.
UNIT_SCALE: Final = {"uV": 1, "mV": 1000}
MAX_INTERPRETATION_CHARS: Final = 500
SAMPLE_TYPECODE: Final = "h"  # array typecode of the stored samples (int16)
# Namespace of strip ids (uuid5 of "device_id|measured_at in UTC, ISO 8601").
STRIP_ID_NAMESPACE: Final = UUID("6f1e3c52-5b0e-5d0c-9a57-1c3e0ec90001")


@dataclass(frozen=True, slots=True, eq=False)
class EcgStrip:
    """One validated strip: leads in 12-lead order, samples in integer µV (int16 arrays).

    Construction checks every invariant of the contract (see :func:`check_strip`), so a strip
    that exists is a valid one whether it came from the wire or from storage.
    """

    device_id: str
    measured_at: datetime  # timezone-aware
    sample_rate_hz: float
    leads: Mapping[str, array[int]]  # lead name -> samples (µV), in LEAD_NAMES order
    interpretation: str | None = None
    source: str | None = None
    gateway_id: str | None = None

    unit: ClassVar[str] = "uV"
    metric: ClassVar[str] = METRIC

    def __post_init__(self) -> None:
        check_strip(self)
        if type(self.sample_rate_hz) is not float:  # an int is welcome; the rate is a float
            object.__setattr__(self, "sample_rate_hz", float(self.sample_rate_hz))

    @property
    def key(self) -> tuple[str, str, datetime]:
        """The natural key, as for every reading: device, metric, measurement time."""
        return (self.device_id, METRIC, self.measured_at)

    @property
    def id(self) -> UUID:
        """The strip's id, derived from its identity (:func:`strip_id`)."""
        return strip_id(self.device_id, self.measured_at)

    @property
    def lead_names(self) -> tuple[str, ...]:
        return tuple(self.leads)

    @property
    def sample_count(self) -> int:
        """Samples per lead (every lead has as many)."""
        return len(next(iter(self.leads.values())))

    @property
    def duration_s(self) -> float:
        return self.sample_count / self.sample_rate_hz

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EcgStrip):
            return NotImplemented
        return (
            self.device_id == other.device_id
            and self.measured_at == other.measured_at
            and self.sample_rate_hz == other.sample_rate_hz
            and list(self.leads.items()) == list(other.leads.items())
            and self.interpretation == other.interpretation
        )

    __hash__ = None  # type: ignore[assignment]  # samples are arrays: strips are not hashable


def strip_id(device_id: str, measured_at: datetime) -> UUID:
    """A strip's id, derived from its identity so that it is the same wherever it is computed."""
    return uuid5(STRIP_ID_NAMESPACE, f"{device_id}|{measured_at.astimezone(UTC).isoformat()}")


def check_strip(strip: EcgStrip) -> None:
    """Raise :class:`InvalidReading` unless ``strip`` keeps the contract's rules."""
    if strip.measured_at.tzinfo is None or strip.measured_at.utcoffset() is None:
        raise InvalidReading("measured_at must be timezone-aware")
    check_rate(strip.sample_rate_hz)
    leads = strip.leads
    if not leads:
        raise InvalidReading("an ECG strip needs 1 to 12 leads; 'leads' is empty")
    if len(leads) > len(LEAD_NAMES):
        raise InvalidReading(f"an ECG strip has at most 12 leads, not {len(leads)}")
    order = [LEAD_ORDER.get(name, -1) for name in leads]
    if -1 in order:
        raise InvalidReading(_unknown_leads(leads))
    if order != sorted(order):
        raise InvalidReading(f"leads must be in 12-lead order {', '.join(LEAD_NAMES)}")
    lengths = {name: len(samples) for name, samples in leads.items()}
    for name, samples in leads.items():
        if not isinstance(samples, array) or samples.typecode != SAMPLE_TYPECODE:
            raise InvalidReading(f"lead {name}: samples must be an int16 array of µV")
    check_lengths(lengths, strip.sample_rate_hz)
    if strip.interpretation is not None:
        check_interpretation(strip.interpretation)


def check_rate(rate: object) -> float:
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        raise InvalidReading("sample_rate_hz must be a number (samples per second)")
    if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:  # also NaN and infinity; exact for huge integers
        raise InvalidReading(
            f"sample_rate_hz {_shown(rate)} is out of range: {MIN_RATE_HZ:g} to {MAX_RATE_HZ:g} Hz"
        )
    return float(rate)


def check_lengths(lengths: Mapping[str, int], rate: float) -> int:
    """The common sample count of the leads; refuses unequal, empty or over-long leads."""
    counts = set(lengths.values())
    if len(counts) > 1:
        listed = ", ".join(f"{name} {n}" for name, n in lengths.items())
        raise InvalidReading(f"leads have unequal lengths ({listed} samples); all must be equal")
    (count,) = counts
    if count == 0:
        raise InvalidReading("leads hold no samples")
    if count / rate > MAX_DURATION_S:
        raise InvalidReading(
            f"strip is {count / rate:g} s long ({count} samples at {rate:g} Hz); at most {MAX_DURATION_S:g} s"
        )
    return count


def check_interpretation(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InvalidReading("interpretation must be a non-empty string when present")
    if len(text) > MAX_INTERPRETATION_CHARS:
        raise InvalidReading(f"interpretation is {len(text)} characters; at most {MAX_INTERPRETATION_CHARS}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise InvalidReading("interpretation contains control characters")
    return text


def _unknown_leads(names: Sequence[str] | Mapping[str, Any]) -> str:
    unknown = [str(name) for name in names if name not in LEAD_ORDER]
    shown = ", ".join(repr(name[:16]) for name in unknown[:5])
    return f"unknown lead name(s) {shown}; leads are named {', '.join(LEAD_NAMES)}"


def samples_from_wire(name: str, values: object, unit: str) -> array[int]:
    """One lead's wire samples as µV int16: integers for ``uV``; numbers for ``mV``, rounded to
    the nearest µV. Refuses non-numbers, booleans, NaN/infinity, fractions of a µV given in
    ``uV``, and values beyond ±32.767 mV."""
    if not isinstance(values, list):
        raise InvalidReading(f"lead {name}: samples must be an array of numbers")
    scale = UNIT_SCALE[unit]
    if scale == 1:
        if not set(map(type, values)) <= {int}:
            _refuse_types(name, values, allow_float=False)
        try:
            return array(SAMPLE_TYPECODE, values)
        except OverflowError:
            _refuse_range(name, values)
            raise  # pragma: no cover - _refuse_range raises first
    _refuse_types(name, values, allow_float=True)
    low, high = SAMPLE_MIN_UV - 0.5, SAMPLE_MAX_UV + 0.5
    scaled = [v * scale for v in values]  # finite numbers (checked), but 1e308 mV overflows
    for i, v in enumerate(scaled):
        if not low < v < high:
            raise InvalidReading(
                f"lead {name}: sample {i} is {_shown(values[i])} {unit}, outside ±32767 µV (±32.767 mV)"
            )
    return array(SAMPLE_TYPECODE, map(round, scaled))


def _refuse_types(name: str, values: list[Any], *, allow_float: bool) -> None:
    for i, v in enumerate(values):
        if type(v) is int:
            continue
        if type(v) is float and allow_float:
            if not math.isfinite(v):
                raise InvalidReading(f"lead {name}: sample {i} is {v}, not a finite number")
            continue
        if type(v) is float:
            if not math.isfinite(v):
                raise InvalidReading(f"lead {name}: sample {i} is {v}, not a finite number")
            raise InvalidReading(
                f"lead {name}: sample {i} is {v!r}, not an integer (uV samples are whole "
                "microvolts; send mV for fractions)"
            )
        raise InvalidReading(f"lead {name}: sample {i} is {_kind(v)}, not a number")


def _refuse_range(name: str, values: list[int]) -> None:
    for i, v in enumerate(values):
        if not SAMPLE_MIN_UV <= v <= SAMPLE_MAX_UV:
            raise InvalidReading(f"lead {name}: sample {i} is {_shown(v)} uV, outside ±32767 µV (±32.767 mV)")


def _shown(number: object) -> str:
    """A number for a reason: a huge integer is cut (a reason stays short)."""
    text = str(number)
    return text if len(text) <= 24 else f"{text[:20]}… ({len(text)} digits)"


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def strip_from_wire(fields: Mapping[str, Any], *, device_id: str, measured_at: datetime) -> EcgStrip:
    """Build a strip from a reading object whose ``metric`` is ``ecg``.

    The caller has parsed ``measured_at`` and checked the device and time rules shared with every
    reading (``devices.message``); this checks the waveform: rate, unit, leads, samples, length,
    interpretation. Cheap checks come before the per-sample work.
    """
    rate = check_rate(fields.get("sample_rate_hz"))
    unit = fields.get("unit")
    if not isinstance(unit, str) or unit not in UNIT_SCALE:
        shown = repr(unit[:16]) if isinstance(unit, str) else _kind(unit)
        raise InvalidReading(f"ECG unit {shown} is not supported; send 'uV' or 'mV'")
    wire_leads = fields.get("leads")
    if not isinstance(wire_leads, dict):
        raise InvalidReading("an ECG reading needs 'leads': an object of lead name -> samples")
    if not wire_leads:
        raise InvalidReading("an ECG strip needs 1 to 12 leads; 'leads' is empty")
    if any(name not in LEAD_ORDER for name in wire_leads):
        raise InvalidReading(_unknown_leads(list(wire_leads)))
    lengths = {}
    for name, values in wire_leads.items():
        if not isinstance(values, list):
            raise InvalidReading(f"lead {name}: samples must be an array of numbers")
        lengths[name] = len(values)
    check_lengths(lengths, rate)
    interpretation = fields.get("interpretation")
    if interpretation is not None:
        interpretation = check_interpretation(interpretation)
    ordered = sorted(wire_leads, key=LEAD_ORDER.__getitem__)
    leads = {name: samples_from_wire(name, wire_leads[name], unit) for name in ordered}
    return EcgStrip(
        device_id,
        measured_at,
        rate,
        leads,
        interpretation,
        _text(fields.get("source")),
        _text(fields.get("gateway_id")),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def strip_to_wire(strip: EcgStrip) -> dict[str, Any]:
    """A strip as a reading object of the contract (samples in ``uV``): what a device sends, and
    what a dead letter keeps so that it can be replayed."""
    wire: dict[str, Any] = {
        "device_id": strip.device_id,
        "metric": METRIC,
        "measured_at": strip.measured_at.isoformat().replace("+00:00", "Z"),
        "sample_rate_hz": int(strip.sample_rate_hz)
        if strip.sample_rate_hz.is_integer()
        else strip.sample_rate_hz,
        "unit": strip.unit,
        "leads": {name: samples.tolist() for name, samples in strip.leads.items()},
    }
    for name in ("interpretation", "source", "gateway_id"):
        if (value := getattr(strip, name)) is not None:
            wire[name] = value
    return wire


# --- the stored form: all leads' samples in one little-endian int16 block, lead after lead


def encode_samples(strip: EcgStrip) -> bytes:
    """All leads' samples as little-endian int16, lead after lead (12-lead order)."""
    block = array(SAMPLE_TYPECODE)
    for samples in strip.leads.values():
        block.extend(samples)
    if sys.byteorder != "little":  # pragma: no cover - x86 and ARM are little-endian
        block.byteswap()
    return block.tobytes()


def decode_samples(blob: bytes, lead_names: Sequence[str], sample_count: int) -> dict[str, array[int]]:
    """The inverse of :func:`encode_samples`: lead name -> int16 µV samples."""
    if len(blob) != 2 * len(lead_names) * sample_count:
        raise InvalidReading(
            f"stored samples are {len(blob)} bytes; expected {2 * len(lead_names) * sample_count} "
            f"for {len(lead_names)} leads of {sample_count}"
        )
    block = array(SAMPLE_TYPECODE)
    block.frombytes(blob)
    if sys.byteorder != "little":  # pragma: no cover
        block.byteswap()
    return {name: block[i * sample_count : (i + 1) * sample_count] for i, name in enumerate(lead_names)}

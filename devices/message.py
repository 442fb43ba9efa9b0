"""Pure parsing of reading messages (MQTT payloads and HTTP bodies) into canonical readings.

No I/O and no clock: the caller passes ``now``. A message-level failure raises
:class:`MalformedPayload`; a bad reading inside a good message becomes a :class:`Rejection`
and the readings around it are kept.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pydantic import TypeAdapter, ValidationError

from devices import ecg
from devices.catalogue import Metric, load_catalogue
from devices.errors import InvalidReading, MalformedPayload, TooManyReadings
from devices.models import DEVICE_ID_RE, MAX_READINGS_PER_MESSAGE, Reading, ReadingIn, WireTime
from devices.units import to_canonical

MAX_PAYLOAD_BYTES: Final = 256 * 1024
# A message holding an ECG strip may be larger (docs/contract/ehr-interop.md §5).
ECG_MAX_BYTES: Final = 4 * 1024 * 1024
FUTURE_TOLERANCE: Final = timedelta(minutes=5)
# Unset device clocks count from 2000-01-01 (or 1970): nothing an RPM program stores is that old.
EARLIEST_PLAUSIBLE: Final = datetime(2010, 1, 1, tzinfo=UTC)
_MESSAGE_FIELDS: Final = ("device_id", "gateway_id", "source", "status", "battery_level")


@dataclass(frozen=True, slots=True)
class Rejection:
    """A reading refused for ``reason``; ``raw`` is the reading object with inherited fields."""

    index: int
    reason: str
    raw: Mapping[str, Any] | None = None


@dataclass(slots=True)
class ParsedMessage:
    device_id: str
    readings: list[tuple[int, Reading]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    strips: list[tuple[int, ecg.EcgStrip]] = field(default_factory=list)  # "metric": "ecg"


@dataclass(frozen=True, slots=True)
class Rules:
    """The knobs of the contract's validation rules (defaults are the contract's values; the
    service builds its own from its settings, whose defaults are these)."""

    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    max_readings: int = MAX_READINGS_PER_MESSAGE
    ecg_max_bytes: int = ECG_MAX_BYTES  # a message holding an ECG strip
    future_tolerance: timedelta = FUTURE_TOLERANCE


DEFAULT_RULES: Final = Rules()


def decode_json(raw: bytes, *, max_bytes: int | None = MAX_PAYLOAD_BYTES) -> Any:
    """Decode a UTF-8 JSON payload, refusing oversized, non-UTF-8, non-JSON or absurdly deep input.

    ``max_bytes`` None: the caller already bounded the size (an HTTP body, by the body limit).
    """
    if max_bytes is not None and len(raw) > max_bytes:
        raise MalformedPayload(f"payload is {len(raw)} bytes, over the {max_bytes}-byte limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedPayload("payload is not UTF-8", offset=exc.start) from None
    try:
        if text.startswith("\ufeff"):  # as json.loads says it (its decoder would not)
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise MalformedPayload(f"payload is not valid JSON: {exc.msg}", offset=exc.pos) from None
    except RecursionError:
        raise MalformedPayload("payload JSON is nested too deeply") from None
    except ValueError as exc:  # raised by _refuse_constant
        raise MalformedPayload(str(exc)) from None


def decode_message(raw: bytes, rules: Rules = DEFAULT_RULES) -> Any:
    """Decode a message under its size limit: ``rules.max_payload_bytes``, or up to
    ``rules.ecg_max_bytes`` when it holds an ECG reading (known only once decoded, so a larger
    message is decoded first, then refused unless it holds one)."""
    limit = max(rules.max_payload_bytes, rules.ecg_max_bytes)
    if len(raw) > limit:
        raise MalformedPayload(
            f"payload is {len(raw)} bytes, over the {limit}-byte limit of a message holding an"
            " ECG strip"
        )
    obj = decode_json(raw, max_bytes=None)
    if len(raw) > rules.max_payload_bytes and not holds_ecg(obj):
        raise MalformedPayload(
            f"payload is {len(raw)} bytes, over the {rules.max_payload_bytes}-byte limit (only a"
            f" message holding an ECG reading may be up to {rules.ecg_max_bytes} bytes)"
        )
    return obj


def holds_ecg(obj: Any) -> bool:
    """Whether a decoded message holds an ECG reading (the larger size limit applies to it)."""
    if not isinstance(obj, dict):
        return False
    items = obj.get("readings")
    if items is None:
        return obj.get("metric") == ecg.METRIC
    return isinstance(items, list) and any(
        isinstance(item, dict) and item.get("metric") == ecg.METRIC for item in items
    )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"payload contains {name}, which is not a JSON number")


# Built once: ``json.loads`` with any option builds a new decoder per call.
_DECODER: Final = json.JSONDecoder(parse_constant=_refuse_constant)


def parse_message(
    obj: Any,
    *,
    device_id: str | None,
    now: datetime,
    rules: Rules = DEFAULT_RULES,
    catalogue: Mapping[str, Metric] | None = None,
) -> ParsedMessage:
    """Turn a decoded message into canonical readings and per-reading rejections.

    ``device_id`` is the device the transport vouches for (the MQTT topic, the HTTP URL or body);
    when None the message itself must name one.
    """
    owner, items, inherited = _split(obj, device_id, rules, require_readings=False)
    parsed = ParsedMessage(device_id=owner)
    metrics = catalogue if catalogue is not None else load_catalogue()
    latest = now + rules.future_tolerance
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            parsed.rejections.append(
                Rejection(index, f"reading must be a JSON object, not {_json_type(item)}")
            )
            continue
        merged = {**inherited, **item} if inherited else item
        try:
            if merged.get("metric") == ecg.METRIC:
                parsed.strips.append((index, _parse_strip(merged, owner, now, latest)))
                continue
            reading = _parse_reading(merged, owner, now, latest, metrics)
        except InvalidReading as exc:
            parsed.rejections.append(Rejection(index, exc.reason, merged))
        else:
            parsed.readings.append((index, reading))
    return parsed


def check_message(
    obj: Any,
    *,
    device_id: str | None,
    rules: Rules = DEFAULT_RULES,
    require_readings: bool = False,
) -> str:
    """The checks on a message as a whole that :func:`parse_message` starts with (a JSON object,
    its device, its 'readings' array and their count), for a caller that must know the device
    before parsing (the HTTP route authorizes it first). Returns the device; raises
    :class:`MalformedPayload`, :class:`TooManyReadings` for too many readings.

    ``require_readings``: the single-reading form (a reading object as the whole message) is
    refused, as in an HTTP body.
    """
    return _split(obj, device_id, rules, require_readings=require_readings)[0]


def _split(
    obj: Any, device_id: str | None, rules: Rules, *, require_readings: bool
) -> tuple[str, list[Any], dict[str, Any]]:
    """(device, reading items, message-level fields they inherit) of a well-formed message."""
    if not isinstance(obj, dict):
        raise MalformedPayload(f"message must be a JSON object, not {_json_type(obj)}")
    owner = _message_device(obj, device_id)
    if "readings" not in obj:
        if require_readings:
            raise MalformedPayload("message has no 'readings' array")
        return owner, [obj], {}
    items = obj["readings"]
    if not isinstance(items, list):
        raise MalformedPayload("'readings' must be an array")
    if not items:
        raise MalformedPayload(
            f"'readings' must be a non-empty array (1 to {rules.max_readings} readings)"
        )
    if len(items) > rules.max_readings:
        raise TooManyReadings(len(items), rules.max_readings)
    return owner, items, {k: obj[k] for k in _MESSAGE_FIELDS if k in obj}


def _message_device(obj: Mapping[str, Any], device_id: str | None) -> str:
    named = obj.get("device_id")
    if device_id is None:
        if not isinstance(named, str) or not DEVICE_ID_RE.fullmatch(named):
            raise MalformedPayload(
                "message names no valid 'device_id' (1-64 characters of A-Z a-z 0-9 . _ : -)"
            )
        return named
    if named is not None and named != device_id:
        raise MalformedPayload(f"message device_id {named!r} does not match {device_id!r}")
    return device_id


def parse_reading(
    fields: Mapping[str, Any],
    *,
    device_id: str,
    now: datetime,
    rules: Rules = DEFAULT_RULES,
    catalogue: Mapping[str, Metric] | None = None,
) -> Reading:
    """Validate one reading object and normalise it; raise :class:`InvalidReading`."""
    metrics = catalogue if catalogue is not None else load_catalogue()
    return _parse_reading(fields, device_id, now, now + rules.future_tolerance, metrics)


# The model's validator itself: ``model_validate`` adds per-call overhead on this hot path.
_validate_wire: Final = ReadingIn.__pydantic_validator__.validate_python


def _parse_reading(
    fields: Mapping[str, Any], device_id: str, now: datetime, latest: datetime, metrics: Mapping[str, Metric]
) -> Reading:
    try:
        wire: ReadingIn = _validate_wire(fields)
    except ValidationError as exc:
        raise InvalidReading(_describe(exc)) from None
    return reading_from_wire(wire, device_id, now, latest, metrics)


def reading_from_wire(
    wire: ReadingIn,
    device_id: str,
    now: datetime,
    latest: datetime,
    metrics: Mapping[str, Metric],
    inherited: Mapping[str, Any] | None = None,
) -> Reading:
    """The rules after the wire format: the device, the metric and its unit, plausibility, time
    (``latest``: ``now`` plus the future tolerance). Raises :class:`InvalidReading`.

    ``inherited``: validated message-level values (status, source, gateway_id, battery_level)
    for the fields the reading does not set itself."""
    if wire.device_id is not None and wire.device_id != device_id:
        raise InvalidReading(f"reading device_id {wire.device_id!r} does not match {device_id!r}")
    metric = metrics.get(wire.metric)
    if metric is None:
        raise InvalidReading(f"unknown metric {wire.metric!r}")
    value = to_canonical(metric.name, wire.value, wire.unit)
    if not metric.is_plausible(value):
        raise InvalidReading(
            f"{metric.name} {value:g} {metric.ucum_unit} is outside the plausible range "
            f"{metric.plausible_min:g}..{metric.plausible_max:g}"
        )
    measured_at = _check_time(wire.measured_at, now, latest)
    status, source, gateway_id, battery_level = (
        wire.status, wire.source, wire.gateway_id, wire.battery_level
    )
    if inherited:
        own = wire.model_fields_set
        status = inherited["status"] if "status" in inherited and "status" not in own else status
        source = inherited["source"] if "source" in inherited and "source" not in own else source
        if "gateway_id" in inherited and "gateway_id" not in own:
            gateway_id = inherited["gateway_id"]
        if "battery_level" in inherited and "battery_level" not in own:
            battery_level = inherited["battery_level"]
    # positional: the field order of Reading (cheaper than keywords on this hot path)
    return Reading(
        device_id,
        metric.name,
        value,
        metric.ucum_unit,
        measured_at,
        wire.value,
        wire.unit,
        status,  # already a tuple
        source,
        gateway_id,
        wire.device_time,
        battery_level,
    )


def _check_time(at: datetime, now: datetime, latest: datetime) -> datetime:
    """The time rules of every reading: not in the future (beyond the tolerance), not before 2010."""
    measured_at = at.astimezone(UTC)
    if measured_at > latest:
        raise InvalidReading(
            f"measured_at {measured_at.isoformat()} is in the future (now {now.isoformat()})"
        )
    if measured_at < EARLIEST_PLAUSIBLE:
        raise InvalidReading(f"measured_at {measured_at.isoformat()} is before 2010 (device clock unset?)")
    return measured_at


_validate_time: Final = TypeAdapter(WireTime).validate_python


def _parse_strip(
    fields: Mapping[str, Any], device_id: str, now: datetime, latest: datetime
) -> ecg.EcgStrip:
    """An ECG reading: the identity and time rules of every reading, then the waveform's own."""
    named = fields.get("device_id")
    if named is not None and named != device_id:
        raise InvalidReading(f"reading device_id {named!r} does not match {device_id!r}")
    try:
        at = _validate_time(fields.get("measured_at"))
    except ValidationError as exc:
        raise InvalidReading(_describe(exc).replace("reading:", "measured_at:", 1)) from None
    measured_at = _check_time(at, now, latest)
    return ecg.strip_from_wire(fields, device_id=device_id, measured_at=measured_at)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False, include_input=False)[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "reading"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number"
    )

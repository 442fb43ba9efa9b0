"""Parsing a message straight from its raw bytes: the common well-formed message in one pass.

:func:`parse_raw` gives exactly what ``parse_message(decode_message(raw))`` gives (the same
readings, rejections and errors); it only takes a shorter road when it can prove the outcome is
the same. The JSON is decoded and validated in one pass by pydantic-core (``validate_json`` on the
bytes: no Python objects for the JSON, no second walk to validate), as a single reading or as a
``{"readings": [...]}`` batch whose message-level fields the readings inherit. Anything the short
road is not sure of (a validation error, a bad reading, an ECG strip, a JSON escape, ``NaN``...)
goes the ordinary way, which then says precisely what is wrong. Measured under a 40,000-message
burst, the ordinary way spent about a third of the writer's time decoding and validating.

Where the two JSON decoders differ, the short road steps aside: Python's ``json`` refuses ``NaN``
and ``Infinity`` (pydantic-core accepts them in fields it ignores), and an escaped key could name
``readings`` without the bytes saying so. ``tests/devices/test_raw_message.py`` compares both roads
on hostile and random input.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from devices import ecg
from devices.catalogue import Metric, load_catalogue
from devices.errors import InvalidReading
from devices.message import (
    DEFAULT_RULES,
    ParsedMessage,
    Rules,
    decode_message,
    parse_message,
    reading_from_wire,
)
from devices.models import ReadingIn

# Bytes that send a message the ordinary way (see the module docstring).
_UNSURE: Final = (b"\\", b"NaN", b"Infinity")
_READINGS_KEY: Final = b'"readings"'


_INHERITED: Final = ("device_id", "gateway_id", "source", "status", "battery_level")


def _as_declared(name: str) -> Any:
    """A field of :class:`ReadingIn` as ``create_model`` takes it: (annotation, FieldInfo)."""
    info = ReadingIn.model_fields[name]
    return (info.annotation, info)


# The batch form with the message-level fields its readings inherit, each declared exactly as on
# a reading (its FieldInfo): a message-level value is valid exactly when it is on a reading.
_Batch: Final[type[BaseModel]] = create_model(
    "_Batch",
    __config__=ConfigDict(extra="ignore", frozen=True),
    readings=(list[ReadingIn], ...),
    **{name: _as_declared(name) for name in _INHERITED},
)
_validate_one: Final = ReadingIn.__pydantic_validator__.validate_json
_validate_batch: Final = _Batch.__pydantic_validator__.validate_json


def parse_raw(
    raw: bytes,
    *,
    device_id: str,
    now: datetime,
    rules: Rules = DEFAULT_RULES,
    catalogue: Mapping[str, Metric] | None = None,
) -> ParsedMessage:
    """``parse_message(decode_message(raw, rules), ...)`` for a message whose transport vouches
    for ``device_id`` (an MQTT topic); raises what they raise."""
    metrics = catalogue if catalogue is not None else load_catalogue()
    parsed = _short_road(raw, device_id, now, rules, metrics)
    if parsed is not None:
        return parsed
    return parse_message(
        decode_message(raw, rules), device_id=device_id, now=now, rules=rules, catalogue=metrics
    )


def _short_road(
    raw: bytes, device_id: str, now: datetime, rules: Rules, metrics: Mapping[str, Metric]
) -> ParsedMessage | None:
    """The parsed message when every reading is good and nothing is in doubt, else None."""
    if len(raw) > rules.max_payload_bytes or any(marker in raw for marker in _UNSURE):
        return None
    latest = now + rules.future_tolerance
    try:
        if _READINGS_KEY not in raw:
            wire = _validate_one(raw)
            if wire.metric == ecg.METRIC:
                return None
            reading = reading_from_wire(wire, device_id, now, latest, metrics)
            return ParsedMessage(device_id=device_id, readings=[(0, reading)])
        batch: Any = _validate_batch(raw)
        items: list[ReadingIn] = batch.readings
        if not items or len(items) > rules.max_readings:
            return None
        if batch.device_id is not None and batch.device_id != device_id:
            return None
        # device_id is not passed on: the message's is the transport's (checked above)
        inherited = {name: getattr(batch, name) for name in _INHERITED[1:] if name in batch.model_fields_set}
        readings = []
        for index, item in enumerate(items):
            if item.metric == ecg.METRIC:
                return None
            readings.append((index, reading_from_wire(item, device_id, now, latest, metrics, inherited)))
        return ParsedMessage(device_id=device_id, readings=readings)
    except (ValidationError, InvalidReading):
        return None

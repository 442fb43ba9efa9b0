"""The canonical reading: the contract between a device side and the clinic side.

``ReadingIn`` is one reading as it arrives on the wire (``docs/contract/mqtt.md``); ``Reading`` is the
same reading after validation, unit normalisation and time rules, ready to be stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
)

from devices.frozen import fast_init

DEVICE_ID_PATTERN: Final = r"^[A-Za-z0-9._:-]{1,64}$"
DEVICE_ID_RE: Final = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # use with fullmatch
# Free text from devices: printable, no control characters (PostgreSQL refuses NUL, logs hate CR/LF).
PRINTABLE_PATTERN: Final = r"^[^\x00-\x1F\x7F]+$"
MAX_READINGS_PER_MESSAGE: Final = 1000
MAX_STATUS_FLAGS: Final = 32


def _require_str(value: Any) -> Any:
    """Time fields must be RFC 3339 strings on the wire, never bare numbers."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string with an offset")
    return value


DeviceId = Annotated[str, Strict(), StringConstraints(pattern=DEVICE_ID_PATTERN)]
ShortText = Annotated[
    str, Strict(), StringConstraints(min_length=1, max_length=64, pattern=PRINTABLE_PATTERN)
]
FiniteNumber = Annotated[float, Strict(), Field(allow_inf_nan=False)]
WireTime = Annotated[AwareDatetime, BeforeValidator(_require_str)]


class ReadingIn(BaseModel):
    """One reading object as devices publish it. Unknown fields are ignored (forward compatible)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    metric: ShortText
    value: FiniteNumber
    unit: Annotated[str, Strict(), StringConstraints(min_length=1, max_length=32, pattern=PRINTABLE_PATTERN)]
    measured_at: WireTime
    device_id: DeviceId | None = None
    status: Annotated[tuple[ShortText, ...], Field(max_length=MAX_STATUS_FLAGS)] = ()
    source: ShortText | None = None
    gateway_id: ShortText | None = None
    device_time: WireTime | None = Field(
        default=None,
        description="the device's own clock reading when the gateway corrected measured_at",
    )
    battery_level: Annotated[int, Strict(), Field(ge=0, le=100)] | None = Field(
        default=None, description="the device's battery level in percent when it was read"
    )


@fast_init
@dataclass(frozen=True, slots=True)
class Reading:
    """A validated reading in the canonical unit of its metric, time in UTC.

    A plain frozen dataclass: it is only ever built from validated input (``parse_reading`` or a
    decoder), and it sits on the hot path, so it skips a second validation.
    """

    device_id: str
    metric: str
    value: float
    unit: str
    measured_at: datetime
    original_value: float
    original_unit: str
    status: tuple[str, ...] = ()
    source: str | None = None
    gateway_id: str | None = None
    device_time: datetime | None = None
    battery_level: int | None = None

    def __post_init__(self) -> None:
        # ints are welcome from decoders and tests; the stored value is always a float
        if type(self.value) is not float:
            object.__setattr__(self, "value", float(self.value))
        if type(self.original_value) is not float:
            object.__setattr__(self, "original_value", float(self.original_value))

    @property
    def key(self) -> tuple[str, str, datetime]:
        """The natural key: a reading is identified by device, metric and measurement time."""
        return (self.device_id, self.metric, self.measured_at)


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What the service knows about a registered device (``POST /v1/devices``): what the exports
    say about the device that measured a reading (FHIR ``Device``, HL7 OBX-18)."""

    device_id: str
    type: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None

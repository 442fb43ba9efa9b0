"""Errors of the Bluetooth decoders; all of them belong to the ``devices`` error hierarchy.

Decoders raise :class:`devices.errors.MalformedPayload` (with the octet offset and the reason)
for any value they cannot decode. The subclasses below let a caller tell the cases apart
without matching on message text.
"""

from __future__ import annotations

from devices.errors import DevicesError, MalformedPayload


class UnsupportedCharacteristic(MalformedPayload):
    """The characteristic UUID is not one we decode (or is not a UUID at all)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


class EncodeError(DevicesError, ValueError):
    """A request cannot be encoded (an operand out of its wire range): a caller bug."""

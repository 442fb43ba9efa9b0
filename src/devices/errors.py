"""One error hierarchy for the ``devices`` package."""

from __future__ import annotations


class DevicesError(Exception):
    """Root of every error raised by the ``devices`` package."""


class MalformedPayload(DevicesError):
    """The bytes or JSON cannot be decoded at all (truncated, wrong type, bad structure).

    ``offset`` is the byte offset where decoding failed, when it is known.
    """

    def __init__(self, reason: str, *, offset: int | None = None) -> None:
        self.reason = reason
        self.offset = offset
        super().__init__(reason if offset is None else f"{reason} (at offset {offset})")


class InvalidReading(DevicesError):
    """One reading breaks the contract: unknown metric, unit, range or time rule."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class CatalogueError(DevicesError):
    """The metric catalogue data is inconsistent (caught at start-up)."""

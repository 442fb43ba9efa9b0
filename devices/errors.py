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


class TooManyReadings(MalformedPayload):
    """A message holds more readings than one message may (an HTTP caller gets 413 for it)."""

    def __init__(self, count: int, limit: int) -> None:
        self.count = count
        self.limit = limit
        super().__init__(
            f"{count} readings in one message; at most {limit} ('readings' must hold 1 to {limit})"
        )


class InvalidReading(DevicesError):
    """One reading breaks the contract: unknown metric, unit, range or time rule."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class CatalogueError(DevicesError):
    """The metric catalogue data is inconsistent (caught at start-up)."""


# --- Bluetooth decoders: subclasses that let a caller tell cases apart without matching on text


class UnsupportedCharacteristic(MalformedPayload):
    """The characteristic UUID is not one we decode (or is not a UUID at all)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


class EncodeError(DevicesError, ValueError):
    """A request cannot be encoded (an operand out of its wire range): a caller bug."""


# --- MQTT (shared by the gateway, the service and the simulators)


class BrokerConfigError(DevicesError):
    """An MQTT broker setting is unusable: a malformed or unsupported URL, credentials that do not
    fit together, a TLS file that is missing or unreadable, an unknown protocol version.

    ``setting`` names the setting at fault (``url``, ``username``, ``password``, ``ca_file``,
    ``cert_file``, ``key_file``, ``protocol``, ``client_id``, ``reconnect``) so each front end can
    name its own option or variable; ``reason`` says what is wrong with it.
    """

    def __init__(self, setting: str, reason: str) -> None:
        self.setting = setting
        self.reason = reason
        super().__init__(f"{setting}: {reason}")


class PublishError(DevicesError):
    """The broker could not be reached, or the MQTT client refused what we published."""


class PublishTimeout(PublishError):
    """The broker did not acknowledge enough messages in time to take another one."""


# --- the home gateway


class GatewayError(DevicesError):
    """Root of the gateway's errors."""


class QueueStorageError(GatewayError):
    """The on-disk queue cannot be read or written (disk failure, corrupt or foreign file).

    Nothing was acknowledged for the operation that raised it; the caller may retry later.
    """


class ConfigurationError(GatewayError):
    """The gateway's settings are unusable (bad broker URL, unknown device id mapping…)."""

"""Errors of the home gateway; all belong to the ``devices`` error hierarchy."""

from __future__ import annotations

from devices.errors import DevicesError


class GatewayError(DevicesError):
    """Root of the gateway's errors."""


class QueueStorageError(GatewayError):
    """The on-disk queue cannot be read or written (disk failure, corrupt or foreign file).

    Nothing was acknowledged for the operation that raised it; the caller may retry later.
    """


class ConfigurationError(GatewayError):
    """The gateway's settings are unusable (bad broker URL, unknown device id mapping…)."""

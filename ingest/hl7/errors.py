"""Errors of the service's HL7 side: the subclass says what happens next."""

from __future__ import annotations


class Hl7ServiceError(Exception):
    """Root of the errors of :mod:`ingest.hl7`."""


class DeliveryFailed(Hl7ServiceError):
    """The message may not have arrived (no connection, no ACK in time, connection dropped, a
    garbled ACK): send the same message (same MSH-10) again later, on a new connection."""

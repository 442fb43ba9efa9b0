"""The one error hierarchy of the HL7 v2 package: each subclass says what the caller does next."""

from __future__ import annotations


class Hl7Error(Exception):
    """Root of every error this package raises."""


class MappingError(Hl7Error):
    """A reading cannot be put into an ORU^R01 (unknown metric, no value): park the row."""


class AckError(Hl7Error):
    """What came back is not a usable acknowledgement: treat as no answer and send again."""


class MessageRejected(Hl7Error):
    """An inbound message cannot be parsed or its type is not supported: answer ``AR``.

    ``code`` is the HL7 table 0357 error condition put in ``ERR-3`` (100 unparseable, 200
    unsupported message type, 201 unsupported event).
    """

    def __init__(self, reason: str, code: str = "100") -> None:
        super().__init__(reason)
        self.code = code


class MessageError(Hl7Error):
    """An inbound message parses but cannot be applied (no MRN, unknown patient): answer ``AE``.

    ``code`` is the HL7 table 0357 error condition put in ``ERR-3``.
    """

    def __init__(self, reason: str, code: str = "207") -> None:
        super().__init__(reason)
        self.code = code

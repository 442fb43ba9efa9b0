"""HL7 v2 for hospital interface engines: ORU^R01 results out, ADT in, MLLP framing.

Pure: builds and reads ER7 messages with python-hl7 (``hl7``); no sockets, no database, no clock
(times are passed in). The service's sender and listener (``ingest/hl7/``) do the I/O.
Depends on ``devices`` only (the canonical reading and the metric catalogue with its MDC codes).
"""

from hl7_export.ack import Ack, AckAnswer, Outcome, build_ack, msh_values, parse_ack
from hl7_export.adt import AdtMessage, parse_adt
from hl7_export.codes import build_codes
from hl7_export.control_id import control_id
from hl7_export.er7 import encode
from hl7_export.errors import AckError, Hl7Error, MappingError, MessageError, MessageRejected
from hl7_export.framing import Broken, Deframer, Frame, Oversized, frame
from hl7_export.models import DeviceRef, Header, OruItem, PatientRef
from hl7_export.oru import OruBuilder

__all__ = [
    "Ack", "AckAnswer", "AckError", "AdtMessage", "Broken", "Deframer", "DeviceRef", "Frame",
    "Header", "Hl7Error", "MappingError", "MessageError", "MessageRejected", "OruBuilder",
    "OruItem", "Outcome", "Oversized", "PatientRef", "build_ack", "build_codes", "control_id",
    "encode", "frame", "msh_values", "parse_ack", "parse_adt",
]  # fmt: skip

"""Answers one inbound ADT message (contract §4): applies it in one transaction and builds the ACK.

``AA`` when applied (or applied before: a re-sent MSH-10 is acknowledged again, applied once);
``AE`` with an ``ERR`` segment when it cannot be applied (unknown patient, missing field, the
database refused it); ``AR`` when it cannot be parsed or its type is not supported. Every message
gets an answer; nothing here raises for bad input.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg

from hl7_export import (
    AckAnswer,
    AdtMessage,
    Header,
    MessageError,
    MessageRejected,
    build_ack,
    encode,
    msh_values,
    parse_adt,
)
from ingest.hl7 import adt_store
from ingest.services import Services

logger = logging.getLogger(__name__)


class AdtHandler:
    def __init__(
        self,
        services: Services,
        header: Header,
        *,
        clinic_id: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._services = services
        self.header = header
        self.clinic_id = clinic_id
        self.clock = clock
        self.answered: Counter[str] = Counter()  # ACK code -> how many (for /metrics)
        self._lock = threading.Lock()

    def answer(self, payload: bytes) -> bytes:
        """The ACK (ER7 bytes, not framed) for one framed message's payload."""
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            text = payload.decode("latin-1")
            return self._ack(AckAnswer("AR", "the message is not valid UTF-8", "102"), text)
        try:
            message = parse_adt(text, mrn_authority=self.header.mrn_authority)[1]
        except MessageRejected as exc:
            logger.info("HL7 ADT rejected: %s", exc)
            return self._ack(AckAnswer("AR", str(exc), exc.code), text)
        except MessageError as exc:
            logger.info("HL7 ADT not applied: %s", exc)
            return self._ack(AckAnswer("AE", str(exc), exc.code), text)
        try:
            reason = self._apply(message, text)
        except MessageError as exc:
            logger.info("HL7 ADT %s %s not applied: %s", message.event, message.control_id, exc.code)
            return self._ack(AckAnswer("AE", str(exc), exc.code), text)
        except psycopg.Error as exc:
            logger.warning(
                "HL7 ADT %s %s not applied: %s", message.event, message.control_id, type(exc).__name__
            )
            return self._ack(
                AckAnswer("AE", f"could not be applied now ({type(exc).__name__}); send it again", "207"),
                text,
            )
        return self._ack(AckAnswer("AA", reason), text)

    def forget_old(self, keep_days: int) -> int:
        """Purge the received-message log past ``keep_days`` (``RPM_HL7_RECEIVED_KEEP_DAYS``)."""
        with self._services.transaction() as conn:
            return adt_store.forget_received(conn, keep_days)

    def reject(self, reason: str, payload: bytes = b"") -> bytes:
        """An ``AR`` for something that is no message (oversized, cut short)."""
        return self._ack(AckAnswer("AR", reason, "100"), payload.decode("utf-8", errors="replace"))

    def _apply(self, m: AdtMessage, text: str) -> str:
        theirs = msh_values(text)
        sender = (theirs.get(3, ""), theirs.get(4, ""))
        with self._services.transaction() as conn:
            if not adt_store.claim_control_id(conn, sender, m.control_id, m.event, self.clinic_id):
                return "already applied"
            if m.event in ("A01", "A04"):
                patient_id, created = adt_store.register(conn, self.clinic_id, m.mrn, m.display_name)
                reason = "registered" if created else "updated"
            elif m.event == "A08":
                patient_id = adt_store.update_name(conn, self.clinic_id, m.mrn, m.display_name)
                reason = "updated"
            elif m.event == "A03":
                patient_id, released = adt_store.end_monitoring(
                    conn, self.clinic_id, m.mrn, m.event_time or self.clock()
                )
                reason = f"monitoring ended; {released} device(s) released"
            else:  # A40
                source = f"hl7:{sender[0]}|{sender[1]}|{m.control_id}"
                patient_id, moved = adt_store.merge(conn, self.clinic_id, m.mrn, m.prior_mrn, source)
                reason = "merged"
                logger.info("HL7 ADT A40 %s: merge moved %s", m.control_id, moved)
            adt_store.note_patient(conn, sender, m.control_id, patient_id)
        return reason

    def _ack(self, answer: AckAnswer, incoming: str) -> bytes:
        with self._lock:
            self.answered[answer.code] += 1
        ack_id = "A" + uuid.uuid4().hex[:19].upper()
        return encode(
            build_ack(answer, header=self.header, control_id=ack_id, now=self.clock(), incoming=incoming)
        )

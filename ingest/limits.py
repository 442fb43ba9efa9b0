"""Every bound the service puts on what it is sent: one object, built once from Settings.

The sizes are defined once: the settings (``RPM_…``, whose defaults are the contract's values in
``devices.message``) or, for the fixed ones, the module that enforces them. The composition root
builds :class:`Limits` and hands it down (``Services.limits``; the pipeline gets ``message``); each
bound is enforced in one place:

- one request body, any route (``RPM_MAX_BODY_BYTES``): ``ingest.security.limits.BodyLimit``, 413;
  ``POST /v1/readings`` may take up to ``RPM_ECG_MAX_BYTES`` there, and the route refuses (413) a
  body over ``RPM_MAX_BODY_BYTES`` that holds no ECG reading;
- one message, whatever its source (``RPM_MAX_PAYLOAD_BYTES``, ``RPM_MAX_READINGS_PER_MESSAGE``,
  ``RPM_FUTURE_TOLERANCE_S``; ``RPM_ECG_MAX_BYTES`` for a message holding an ECG reading):
  ``devices.message`` in the pipeline, a dead letter or a rejected reading; the HTTP route runs
  the same message checks before it authorizes the device (413 for too many readings). An HTTP
  body is bounded by the body limit, not the payload limit;
- one request head (``RPM_MAX_HEADER_BYTES``): ``ingest.security.limits.HeaderLimit``, 431;
- one dead letter (fixed): ``ingest.store.deadletters.DeadLetter.build`` keeps at most
  ``MAX_RAW_BYTES`` raw bytes and ``MAX_REASON_CHARS`` of reason;
- dead letters of one source and device (else topic) per window (``RPM_DEAD_LETTER_LIMIT`` per
  ``RPM_DEAD_LETTER_WINDOW_S``): ``ingest.store.deadletters.insert_dead_letters``, called once per
  transaction by ``Services.ingest``; beyond the limit they are counted into one summary row;
- one MQTT packet: the broker's ``max_packet_size`` (``deploy/mosquitto/mosquitto.conf``), no more
  than ``MAX_RAW_BYTES``, so the dead letter of an MQTT message keeps it whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from devices.message import Rules
from ingest.settings import Settings
from ingest.store.deadletters import DeadLetterLimit


@dataclass(frozen=True, slots=True)
class Limits:
    message: Rules  # one message: payload bytes, readings, how far in the future a reading may be
    body_bytes: int  # one HTTP request body
    dead_letters: DeadLetterLimit = DeadLetterLimit()  # full dead letters per key and window

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            message=Rules(
                max_payload_bytes=settings.max_payload_bytes,
                max_readings=settings.max_readings_per_message,
                ecg_max_bytes=settings.ecg_max_bytes,
                future_tolerance=timedelta(seconds=settings.future_tolerance_s),
            ),
            body_bytes=settings.max_body_bytes,
            dead_letters=DeadLetterLimit(
                per_window=settings.dead_letter_limit, window_s=settings.dead_letter_window_s
            ),
        )

"""One received MQTT message, converted for the writer (pure: no paho, no clock)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ingest.errors import TopicRejected
from ingest.mqtt.topics import device_from_topic, shown
from ingest.pipeline import Envelope

SOURCE = "mqtt"


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message as received, and what is needed to acknowledge it later.

    ``generation`` identifies the connection it arrived on: an acknowledgement is only ever sent
    on that same connection (after a reconnect the broker redelivers instead).
    ``refused`` holds the reason when the topic itself is unusable (dead-lettered as it is).
    """

    envelope: Envelope
    mid: int
    qos: int
    generation: int
    refused: str | None = None

    @property
    def size(self) -> int:
        return len(self.envelope.raw)


def to_delivery(
    *,
    prefix: str,
    topic: bytes,
    payload: bytes | bytearray,
    mid: int,
    qos: int,
    generation: int,
    received_at: datetime,
) -> Delivery:
    """Convert a received message; a bad topic becomes a delivery to dead-letter, never an error."""
    refused: str | None = None
    device_id: str | None = None
    try:
        text = topic.decode("utf-8")
    except UnicodeDecodeError:
        text = topic.decode("utf-8", errors="replace")
        refused = f"topic {shown(text)} is not UTF-8"
    if refused is None:
        try:
            device_id = device_from_topic(prefix, text)
        except TopicRejected as exc:
            refused = exc.reason
    envelope = Envelope(
        source=SOURCE,
        raw=bytes(payload),
        received_at=received_at,
        device_id=device_id,
        topic=text.replace("\x00", "\ufffd"),
    )
    return Delivery(envelope=envelope, mid=mid, qos=qos, generation=generation, refused=refused)

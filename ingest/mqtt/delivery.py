"""One received MQTT message, converted for the writer (pure: no paho, no clock)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from devices.frozen import fast_init
from ingest.errors import TopicRejected
from ingest.mqtt.topics import device_from_topic, shown
from ingest.pipeline import Envelope

SOURCE = "mqtt"


@fast_init
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


def read_topic(prefix: str, topic: bytes) -> tuple[str, str | None, str | None]:
    """(topic text, the device it vouches for, the reason it is unusable): one of the last two
    is None."""
    try:
        text = topic.decode("utf-8")
    except UnicodeDecodeError:
        text = topic.decode("utf-8", errors="replace")
        return text.replace("\x00", "\ufffd"), None, f"topic {shown(text)} is not UTF-8"
    try:
        device_id = device_from_topic(prefix, text)
    except TopicRejected as exc:
        return text.replace("\x00", "\ufffd"), None, exc.reason
    return text.replace("\x00", "\ufffd"), device_id, None


class TopicReader:
    """:func:`read_topic` with a memory: a device publishes on the same topic every time, so the
    network thread decodes and checks each topic once. Bounded: topics of at most ``CACHED_BYTES``
    bytes are kept, all forgotten when there are ``max_topics`` of them (a few MiB at most)."""

    CACHED_BYTES: Final = 256

    def __init__(self, prefix: str, *, max_topics: int = 20_000) -> None:
        self.prefix = prefix
        self.max_topics = max_topics
        self._known: dict[bytes, tuple[str, str | None, str | None]] = {}

    def __call__(self, topic: bytes) -> tuple[str, str | None, str | None]:
        found = self._known.get(topic)
        if found is None:
            found = read_topic(self.prefix, topic)
            if len(topic) <= self.CACHED_BYTES:
                if len(self._known) >= self.max_topics:
                    self._known.clear()
                self._known[bytes(topic)] = found
        return found


def to_delivery(
    *,
    prefix: str,
    topic: bytes,
    payload: bytes | bytearray,
    mid: int,
    qos: int,
    generation: int,
    received_at: datetime,
    topics: TopicReader | None = None,
) -> Delivery:
    """Convert a received message; a bad topic becomes a delivery to dead-letter, never an error.

    ``topics``: the session's :class:`TopicReader` for ``prefix`` (None: read the topic afresh)."""
    text, device_id, refused = read_topic(prefix, topic) if topics is None else topics(topic)
    envelope = Envelope(
        source=SOURCE,
        raw=payload if type(payload) is bytes else bytes(payload),
        received_at=received_at,
        device_id=device_id,
        topic=text,
    )
    return Delivery(envelope=envelope, mid=mid, qos=qos, generation=generation, refused=refused)

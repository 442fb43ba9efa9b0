"""An MQTT-aware tap for :class:`tests.support.tcpproxy.TcpProxy` (client = our consumer).

It reads the packets crossing the proxy: PUBLISH from the broker (packet id -> topic, payload)
and PUBACK from the client. ``on_ack`` is called for every acknowledgement *before* it reaches
the broker (e.g. to check the reading is committed) and may ask to drop it and cut the link, as
a crash between commit and acknowledgement would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.support.tcpproxy import CLIENT_TO_SERVER, Link, TcpProxy

PUBLISH, PUBACK, CONNECT = 3, 4, 1

# on_ack(topic, payload) -> True to forward the PUBACK, False to drop it and cut the link
AckHook = Callable[[str, bytes], bool]


@dataclass
class AckRecord:
    at: float
    topic: str
    payload: bytes


@dataclass
class _Stream:
    buffer: bytearray = field(default_factory=bytearray)


def _split(buffer: bytearray) -> tuple[list[bytes], bytearray]:
    """Complete packets at the head of ``buffer`` and what is left."""
    packets: list[bytes] = []
    pos = 0
    while True:
        if len(buffer) - pos < 2:
            break
        length, multiplier, i = 0, 1, pos + 1
        complete_header = False
        while i < len(buffer) and i < pos + 5:
            byte = buffer[i]
            length += (byte & 0x7F) * multiplier
            multiplier *= 128
            i += 1
            if not byte & 0x80:
                complete_header = True
                break
        if not complete_header or len(buffer) < i + length:
            break
        packets.append(bytes(buffer[pos : i + length]))
        pos = i + length
    return packets, buffer[pos:]


def _body(packet: bytes) -> bytes:
    i = 1
    while packet[i] & 0x80:
        i += 1
    return packet[i + 1 :]


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, multiplier = 0, 1
    while True:
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) * multiplier
        multiplier *= 128
        if not byte & 0x80:
            return value, pos


class MqttTap:
    def __init__(self, on_ack: AckHook | None = None) -> None:
        self.on_ack = on_ack
        self.acks: list[AckRecord] = []
        self.publishes = 0
        self.dropped_acks = 0
        self._lock = threading.Lock()

    def attach(self, proxy: TcpProxy) -> None:
        proxy.tap = self

    def acks_between(self, start: float, end: float) -> int:
        with self._lock:
            return sum(1 for a in self.acks if start <= a.at < end)

    def __call__(self, link: Link, direction: str, data: bytes) -> bytes:
        stream = link.state.setdefault(direction, _Stream())
        assert isinstance(stream, _Stream)
        stream.buffer.extend(data)
        packets, stream.buffer = _split(stream.buffer)
        out = bytearray()
        for packet in packets:
            kind = packet[0] >> 4
            if direction == CLIENT_TO_SERVER and kind == CONNECT:
                body = _body(packet)
                name_len = int.from_bytes(body[0:2], "big")
                link.state["v5"] = body[2 + name_len] == 5
            elif direction != CLIENT_TO_SERVER and kind == PUBLISH:
                self._publish(link, packet)
            elif direction == CLIENT_TO_SERVER and kind == PUBACK:
                pid = int.from_bytes(_body(packet)[0:2], "big")
                inflight = link.state.setdefault("inflight", {})
                assert isinstance(inflight, dict)
                topic, payload = inflight.pop(pid, ("?", b""))
                forward = self.on_ack(topic, payload) if self.on_ack is not None else True
                if not forward:
                    with self._lock:
                        self.dropped_acks += 1
                    link.close()
                    return bytes(out)
                with self._lock:
                    self.acks.append(AckRecord(time.monotonic(), topic, payload))
            out.extend(packet)
        return bytes(out)

    def _publish(self, link: Link, packet: bytes) -> None:
        qos = (packet[0] >> 1) & 0x03
        body = _body(packet)
        topic_len = int.from_bytes(body[0:2], "big")
        topic = body[2 : 2 + topic_len].decode("utf-8", errors="replace")
        pos = 2 + topic_len
        with self._lock:
            self.publishes += 1
        if qos == 0:
            return
        pid = int.from_bytes(body[pos : pos + 2], "big")
        pos += 2
        if link.state.get("v5"):
            props_len, pos = _varint(body, pos)
            pos += props_len
        inflight = link.state.setdefault("inflight", {})
        assert isinstance(inflight, dict)
        inflight[pid] = (topic, body[pos:])

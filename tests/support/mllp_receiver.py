"""An MLLP receiver for the tests, written apart from the product: it frames and reads bytes
itself, parses and validates every message with hl7apy (strict, against the HL7 v2.6 structures,
not python-hl7 which builds them) and builds its ACKs with hl7apy.

It plays an interface engine: ``script`` decides the answer to each delivery attempt of a control
id ("AA", "AE", "AR", "CA", "drop" = read the message and close without an answer, "silent" = never
answer, or the text of an ACK to send as it is); it counts what it accepted by MSH-10, once per
control id, the way an engine that de-duplicates would. :meth:`down` and :meth:`up` stop and
restart it on the same port.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message
from hl7apy.parser import parse_message

START, END = b"\x0b", b"\x1c\x0d"

Script = Callable[[str, int], str]  # (MSH-10, attempt number from 1) -> behaviour


@dataclass
class Received:
    control_id: str
    text: str
    message: Any  # hl7apy Message
    answer: str


@dataclass
class MllpReceiver:
    script: Script = lambda control_id, attempt: "AA"
    validate: bool = True
    host: str = "127.0.0.1"
    port: int = 0
    received: list[Received] = field(default_factory=list)
    accepted: Counter[str] = field(default_factory=Counter)  # AA/CA answers per MSH-10
    attempts: Counter[str] = field(default_factory=Counter)
    invalid: list[str] = field(default_factory=list)  # validation errors
    connections: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"mllp://{self.host}:{self.port}"

    def unique_accepted(self) -> set[str]:
        with self._lock:
            return set(self.accepted)

    def __enter__(self) -> MllpReceiver:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="test-mllp-receiver", daemon=True)
        self._thread.start()
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()
        assert self._loop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def up(self) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def down(self) -> None:
        """Stop listening and cut every open connection (the engine went away)."""
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._client, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            await self._server.wait_closed()
            self._server = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        buffer = b""
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    return
                buffer += chunk
                while END in buffer:
                    block, _, buffer = buffer.partition(END)
                    start = block.find(START)
                    if start < 0:
                        continue
                    behaviour = self._receive(block[start + 1 :].decode("utf-8"))
                    if behaviour == "drop":
                        writer.transport.abort()
                        return
                    if behaviour == "silent":
                        continue
                    writer.write(START + behaviour.encode("utf-8") + END)
                    await writer.drain()
        except (ConnectionError, OSError):
            return
        finally:
            self._writers.discard(writer)

    def _receive(self, text: str) -> str:
        """Parse, validate, decide; returns the ACK text, or "drop" / "silent"."""
        try:
            message = parse_message(
                text.replace("\n", "\r"),
                validation_level=VALIDATION_LEVEL.STRICT if self.validate else VALIDATION_LEVEL.TOLERANT,
                find_groups=self.validate,
            )
            if self.validate:
                message.validate()
            control_id = message.msh.msh_10.value
        except Exception as exc:  # noqa: BLE001 - a test receiver reports whatever hl7apy says
            with self._lock:
                self.invalid.append(f"{type(exc).__name__}: {exc}")
            return ack_text("AR", "", f"invalid: {exc}")
        with self._lock:
            self.attempts[control_id] += 1
            behaviour = self.script(control_id, self.attempts[control_id])
            if behaviour in ("AA", "CA"):
                self.accepted[control_id] += 1
            self.received.append(Received(control_id, text, message, behaviour))
        if behaviour in ("drop", "silent") or behaviour.startswith("MSH"):
            return behaviour
        reason = {"AE": "database busy, try again", "AR": "Unknown patient ^ MRN|x"}.get(behaviour, "")
        return ack_text(behaviour, control_id, reason)


def ack_text(code: str, control_id: str, reason: str = "") -> str:
    """An ACK built with hl7apy (MSA-1 code, MSA-2 the control id, ERR-8 the reason)."""
    ack = Message("ACK", version="2.6")
    ack.msh.msh_3 = "TEST-ENGINE"
    ack.msh.msh_9 = "ACK^R01^ACK"
    ack.msh.msh_10 = "ACK" + control_id[:16]
    ack.msh.msh_11 = "P"
    ack.msa.msa_1 = code
    ack.msa.msa_2 = control_id
    if reason:
        err = ack.add_segment("ERR")
        err.err_4 = "E"
        err.err_8 = reason.replace("^", "\\S\\").replace("|", "\\F\\")
    return str(ack.to_er7())

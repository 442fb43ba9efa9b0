"""The ADT listener on ``RPM_HL7_LISTEN``: an asyncio MLLP server on a thread of its own.

Each connection reads frames with :class:`hl7_export.Deframer` and answers each in order (the
database work runs on a worker thread). Hostile or broken clients cost one connection at most:
a frame past ``RPM_HL7_MAX_MESSAGE_BYTES`` is skipped to its end and answered ``AR``; a frame cut
short by a new start block is answered ``AR``; bytes outside frames are dropped; a client that
starts a message and does not finish it within ``RPM_HL7_READ_TIMEOUT_S``, or says nothing for
``RPM_HL7_IDLE_TIMEOUT_S``, is disconnected; beyond ``RPM_HL7_MAX_CONNECTIONS`` a new connection
is closed at once. Nothing a client sends stops the server.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass

import psycopg

from hl7_export import Broken, Deframer, Frame, Oversized, frame
from ingest.hl7.adt import AdtHandler

logger = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024
UPKEEP_INTERVAL_S = 3600.0


@dataclass(frozen=True)
class ListenerLimits:
    max_message_bytes: int
    read_timeout_s: float
    idle_timeout_s: float
    max_connections: int
    received_keep_days: int = 90


class AdtListener:
    def __init__(self, host: str, port: int, handler: AdtHandler, limits: ListenerLimits) -> None:
        self.host = host
        self.port = port
        self.handler = handler
        self.limits = limits
        self.connections = 0
        self.answered = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="hl7-adt-listener", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        logger.info("HL7 ADT listener on %s:%d", self.host, self.port)

    def stop(self) -> None:
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None:
            loop.call_soon_threadsafe(stopped.set)
        if self._thread is not None:
            self._thread.join(15)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported to start(), which raises it
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        # reuse_port: the worker processes of `serve --workers N` all listen on the one port, the
        # kernel spreading connections among them (idempotence is in the database).
        server = await asyncio.start_server(self._client, self.host, self.port, reuse_port=True)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        upkeep = asyncio.create_task(self._upkeep())
        async with server:
            await self._stopped.wait()
            upkeep.cancel()
            server.close()
            await server.wait_closed()

    async def _upkeep(self) -> None:
        """Once an hour, forget messages applied longer ago than the keeping time."""
        while True:
            try:
                purged = await asyncio.to_thread(self.handler.forget_old, self.limits.received_keep_days)
                if purged:
                    logger.info("HL7 ADT upkeep: %d old received-message entries purged", purged)
            except psycopg.Error as exc:
                logger.warning("HL7 ADT upkeep: storage unavailable (%s)", exc)
            await asyncio.sleep(UPKEEP_INTERVAL_S)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.connections >= self.limits.max_connections:
            logger.warning("HL7 ADT listener: connection refused (%d open)", self.connections)
            writer.close()
            return
        self.connections += 1
        try:
            await self._converse(reader, writer)
        except (ConnectionError, OSError) as exc:
            logger.debug("HL7 ADT client gone: %s", exc)
        finally:
            self.connections -= 1
            writer.close()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        limits = self.limits
        deframer = Deframer(limits.max_message_bytes)
        frame_started = 0.0
        while True:
            if deframer.in_frame:
                timeout = max(0.0, frame_started + limits.read_timeout_s - loop.time())
            else:
                timeout = limits.idle_timeout_s
            try:
                data = await asyncio.wait_for(reader.read(READ_CHUNK), timeout)
            except TimeoutError:
                logger.info("HL7 ADT client %s timed out", "mid-message" if deframer.in_frame else "silent")
                return
            if not data:
                return
            was_in_frame = deframer.in_frame
            for event in deframer.feed(data):
                answer = await self._answer(event)
                writer.write(frame(answer))
                self.answered += 1
            await writer.drain()
            if deframer.in_frame and (not was_in_frame or _restarted(data)):
                frame_started = loop.time()

    async def _answer(self, event: Frame | Broken | Oversized) -> bytes:
        if isinstance(event, Frame):
            try:
                return await asyncio.to_thread(self.handler.answer, event.payload)
            except Exception:  # noqa: BLE001 - the contract: every message is answered, none stops us
                logger.exception("HL7 ADT: answering a message failed")
                return self.handler.reject("the message could not be processed", event.payload)
        if isinstance(event, Broken):
            return self.handler.reject("the message was cut short by the start of another", event.payload)
        return self.handler.reject(f"the message is larger than {self.limits.max_message_bytes} bytes")


def _restarted(data: bytes) -> bool:
    """A new frame began in this chunk (its deadline starts now)."""
    return b"\x0b" in data

"""One MLLP connection to the receiver, kept open between messages (python-hl7's asyncio streams).

:meth:`MllpConnection.exchange` sends one framed message and waits for one framed answer; any
failure (cannot connect, no answer in time, connection closed, a frame that is no MLLP block)
closes the connection and raises :class:`DeliveryFailed`, so the next exchange starts on a fresh
connection and a late answer to an abandoned message can never be taken for the next one's.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from hl7.mllp import InvalidBlockError, open_hl7_connection

from ingest.hl7.errors import DeliveryFailed

logger = logging.getLogger(__name__)

MAX_ACK_BYTES = 1024 * 1024


class MllpConnection:
    def __init__(self, host: str, port: int, *, connect_timeout_s: float, ack_timeout_s: float) -> None:
        self.host = host
        self.port = port
        self.connect_timeout_s = connect_timeout_s
        self.ack_timeout_s = ack_timeout_s
        self._reader: Any = None
        self._writer: Any = None
        self.connects = 0

    @property
    def is_open(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def connect(self) -> None:
        if self.is_open:
            return
        try:
            self._reader, self._writer = await asyncio.wait_for(
                open_hl7_connection(self.host, self.port, encoding="utf-8", limit=MAX_ACK_BYTES),
                self.connect_timeout_s,
            )
        except (OSError, TimeoutError) as exc:
            raise DeliveryFailed(f"cannot connect to mllp://{self.host}:{self.port}: {_text(exc)}") from None
        self.connects += 1
        logger.info("HL7 MLLP connection to %s:%d open", self.host, self.port)

    async def exchange(self, payload: bytes) -> str:
        """Send one message, return the answer's text (decoded UTF-8, undecodable bytes replaced)."""
        await self.connect()
        try:
            self._writer.writeblock(payload)
            await self._writer.drain()
            async with asyncio.timeout(self.ack_timeout_s):
                block = await self._reader.readblock()
        except TimeoutError:
            await self.close()
            raise DeliveryFailed(f"no ACK within {self.ack_timeout_s:g} s") from None
        except (OSError, asyncio.IncompleteReadError, InvalidBlockError, ValueError) as exc:
            await self.close()
            raise DeliveryFailed(f"connection lost before the ACK: {_text(exc)}") from None
        return bytes(block).decode("utf-8", errors="replace")

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is None:
            return
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 2)
        except (OSError, TimeoutError):
            pass


def _text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__

"""Shared pieces of the HL7 service tests: a sender over the test database aimed at a test
receiver, run claim by claim (no thread), and a plain MLLP client for the ADT listener."""

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from psycopg_pool import ConnectionPool

from devices.catalogue import load_catalogue
from hl7_export import Header, OruBuilder, build_codes
from ingest.export.destinations import HL7
from ingest.export.outbox.claims import PgOutbox
from ingest.hl7.connection import MllpConnection
from ingest.hl7.reader import Hl7Item, hl7_reader
from ingest.hl7.sender import Backoff, Hl7Sender
from tests.support.mllp_receiver import MllpReceiver

START, END = b"\x0b", b"\x1c\x0d"


def make_sender(
    pool: ConnectionPool, receiver: MllpReceiver, *, ack_timeout_s: float = 10.0, batch_size: int = 50
) -> Hl7Sender:
    outbox: PgOutbox[Hl7Item] = PgOutbox(
        pool, worker="test-hl7", destination=HL7, reader=hl7_reader, lease_s=60
    )
    connection = MllpConnection(
        receiver.host, receiver.port, connect_timeout_s=5, ack_timeout_s=ack_timeout_s
    )
    builder = OruBuilder(Header(mrn_authority="HOSP"), build_codes(load_catalogue()))
    return Hl7Sender(outbox, pool, connection, builder, batch_size=batch_size, backoff=Backoff(30, 300))


def run_once(sender: Hl7Sender) -> tuple[int, bool]:
    async def once() -> tuple[int, bool]:
        try:
            return await sender.run_once()
        finally:
            await sender.connection.close()

    # On a thread of its own: a test session that drives a browser keeps an event loop running on
    # the main thread (Playwright's sync API), where asyncio.run() refuses to start another.
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, once()).result()


def hl7_rows(pool: ConnectionPool) -> list[dict[str, Any]]:
    with pool.connection() as conn:
        cur = conn.execute(
            "SELECT id, status, attempts, last_error, fhir_reference, patient_id, export_key"
            " FROM outbox WHERE destination = 'hl7' ORDER BY id"
        )
        names = [d.name for d in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def make_due(pool: ConnectionPool) -> None:
    with pool.connection() as conn, conn.transaction():
        conn.execute("UPDATE outbox SET next_attempt_at = now() WHERE status = 'pending'")


class MllpClient:
    """A blocking MLLP client of the tests' own (for the ADT listener)."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout_s: float = 30) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.buffer = b""

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_frame(self) -> str:
        while END not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the listener")
            self.buffer += chunk
        block, _, self.buffer = self.buffer.partition(END)
        assert block.startswith(START), block[:20]
        return block[1:].decode("utf-8")

    def send(self, message: str) -> str:
        self.send_raw(START + message.encode("utf-8") + END)
        return self.read_frame()

    def closed_by_peer(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionError:
            return True

    def close(self) -> None:
        self.sock.close()

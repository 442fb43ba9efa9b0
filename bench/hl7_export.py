"""HL7 v2 export benchmark: ORU^R01 messages/s from the outbox to a local MLLP receiver that ACKs
at once, against the FHIR export's rate in the same run.

    .venv/bin/python bench/hl7_export.py [--readings 10000] [--batch 200] [--bundle 100]

On a fresh database (RPM_BENCH_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/postgres)
the readings are stored through the real pipeline with outbox rows for both destinations (a
blood-pressure panel is one row, one message, one Observation). Then, one after the other:
  * HL7: the real sender (claim, build, MLLP send, wait for the ACK, record) over one connection to
    a receiver in another process that answers each message with an AA at once, and the sender's
    own CPU time per message (what it costs apart from waiting: on a busy machine the wall-clock
    rate also pays for the receiver, PostgreSQL and everything else sharing the cores);
  * reference: the receiver's own rate for the same messages, pre-encoded, sent back to back on
    one connection (the ceiling the sender can reach);
  * FHIR: the real export worker (claim, map, transaction Bundles of --bundle, conditional create)
    to the local FHIR server (tests/fhir_server), one worker.
The target: the sender is not the bottleneck at clinic scale, >= 1,000 messages/s here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
# Drop bench/ from the path (its modules would shadow the packages), add the repository root.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, str(ROOT))

from bench._support import enrol_patient, fresh_database  # noqa: E402
from devices.catalogue import load_catalogue  # noqa: E402
from fhir_export.auth import NoAuth  # noqa: E402
from fhir_export.client import FhirClient, RetryPolicy, build_http_client  # noqa: E402
from fhir_export.mapping import ObservationMapper  # noqa: E402
from fhir_export.table import build_table  # noqa: E402
from fhir_export.worker import ExportWorker  # noqa: E402
from hl7_export import Header, OruBuilder, build_codes  # noqa: E402
from ingest.db.pool import open_pool  # noqa: E402
from ingest.export.destinations import FHIR, HL7  # noqa: E402
from ingest.export.fhir_devices import DeviceRegistry  # noqa: E402
from ingest.export.outbox import OutboxWriter, PgOutbox  # noqa: E402
from ingest.hl7.connection import MllpConnection  # noqa: E402
from ingest.hl7.reader import hl7_reader  # noqa: E402
from ingest.hl7.sender import Backoff, Hl7Sender  # noqa: E402
from ingest.pipeline import Envelope, Pipeline  # noqa: E402
from ingest.store.readings import prepare_session  # noqa: E402
from tests.support.fhir_test_server import run_fhir_server  # noqa: E402

START = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0)
DEVICES = 20
PATIENT = "bench-patient"
SB, EB = b"\x0b", b"\x1c\x0d"


# --- the receiver (another process: it must not share the sender's interpreter)


def _receiver(port_out: Any) -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = b""
        while chunk := await reader.read(65536):
            buffer += chunk
            while EB in buffer:
                block, _, buffer = buffer.partition(EB)
                msh = block[block.find(SB) + 1 :].split(b"\r", 1)[0].split(b"|")
                control_id = msh[9] if len(msh) > 9 else b""
                writer.write(SB + b"MSH|^~\\&|BENCH||||||ACK|A1|P|2.6\rMSA|AA|" + control_id + b"\r" + EB)
            await writer.drain()

    async def serve() -> None:
        server = await asyncio.start_server(client, "127.0.0.1", 0)
        port_out.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(serve())


def start_receiver() -> tuple[multiprocessing.Process, int]:
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=_receiver, args=(child,), daemon=True)
    process.start()
    return process, int(parent.recv())


# --- data


def prepare(url: str) -> None:
    enrol_patient(url, fhir_patient_id=PATIENT, devices=DEVICES, since=START)


def ingest(url: str, n: int) -> None:
    """``n`` readings: heart rates and (every 4th measurement) a blood-pressure panel."""
    pipeline = Pipeline(hooks=[OutboxWriter(build_table(), destinations=(FHIR, HL7), panel_wait_s=0)])
    envelopes: list[Envelope] = []
    i = 0
    while i < n:
        readings: list[dict[str, Any]] = []
        device = f"bench-{len(envelopes) % DEVICES:03d}"
        while len(readings) < 10 and i < n:
            at = (START + timedelta(seconds=i)).isoformat()
            if i % 4 == 0:
                readings += [
                    {"metric": "systolic_bp", "value": 120 + i % 20, "unit": "mm[Hg]", "measured_at": at},
                    {"metric": "diastolic_bp", "value": 80, "unit": "mm[Hg]", "measured_at": at},
                ]
                i += 2
            else:
                readings.append(
                    {"metric": "heart_rate", "value": 60 + i % 40, "unit": "/min", "measured_at": at}
                )
                i += 1
        raw = json.dumps({"readings": readings}).encode()
        envelopes.append(Envelope(source="bench", raw=raw, received_at=datetime.now(UTC), device_id=device))
    with psycopg.connect(url) as conn:
        for k in range(0, len(envelopes), 50):
            with conn.transaction():
                pipeline.process(conn, envelopes[k : k + 50], collect=[])


def sent(url: str, destination: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'sent'), count(*) FROM outbox WHERE destination = %s",
            (destination,),
        ).fetchone()
    assert row is not None and row[0] == row[1], f"{destination}: only {row[0]} of {row[1]} rows sent"
    return int(row[0])


# --- the three runs


def run_hl7(url: str, port: int, batch: int) -> tuple[float, float, list[bytes]]:
    """(wall seconds, this process's CPU seconds, the messages sent)."""
    pool = open_pool(url, min_size=1, max_size=2, prepare=prepare_session)
    messages: list[bytes] = []
    try:
        outbox = PgOutbox(pool, worker="bench-hl7", destination=HL7, reader=hl7_reader, lease_s=300)
        connection = MllpConnection("127.0.0.1", port, connect_timeout_s=5, ack_timeout_s=30)
        original = connection.exchange

        async def keep(payload: bytes) -> str:
            messages.append(payload)
            return await original(payload)

        connection.exchange = keep  # type: ignore[method-assign]  # records what went, for the reference
        builder = OruBuilder(Header(mrn_authority="BENCH"), build_codes(load_catalogue()))
        sender = Hl7Sender(outbox, pool, connection, builder, batch_size=batch, backoff=Backoff(1, 1))

        async def drain() -> tuple[float, float]:
            started, cpu = time.perf_counter(), time.process_time()
            while (await sender.run_once())[0]:
                pass
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            await connection.close()
            return seconds, cpu

        seconds, cpu = asyncio.run(drain())
        return seconds, cpu, messages
    finally:
        pool.close()


def run_reference(port: int, messages: list[bytes]) -> float:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        started = time.perf_counter()
        for payload in messages:
            sock.sendall(SB + payload + EB)
            answer = b""
            while EB not in answer:
                answer += sock.recv(65536)
        return time.perf_counter() - started


def run_fhir(url: str, bundle: int) -> float:
    with run_fhir_server() as server, build_http_client() as http:
        server.put({"resourceType": "Patient", "id": PATIENT})
        client = FhirClient(http, server.base_url, NoAuth(), retry=RetryPolicy(attempts=1))
        mapper = ObservationMapper(build_table())
        pool = open_pool(url, min_size=1, max_size=3, prepare=prepare_session)
        try:
            registry = DeviceRegistry(
                client, pool, base_url=server.base_url, device_system=mapper.device_system
            )
            worker = ExportWorker(PgOutbox(pool, worker="bench-fhir"), registry, mapper, bundle_size=bundle)
            started = time.perf_counter()
            while worker.run_once():
                pass
            return time.perf_counter() - started
        finally:
            pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--readings", type=int, default=10_000)
    parser.add_argument(
        "--batch", type=int, default=200, help="HL7 rows claimed at once (RPM_HL7_BATCH_SIZE)"
    )
    parser.add_argument("--bundle", type=int, default=100, help="FHIR bundle size (RPM_FHIR_BUNDLE_SIZE)")
    args = parser.parse_args()
    receiver, port = start_receiver()
    try:
        with fresh_database("rpm_bench_hl7") as url:
            prepare(url)
            ingest(url, args.readings)
            hl7_s, cpu_s, messages = run_hl7(url, port, args.batch)
            rows = sent(url, HL7)
            print(f"HL7 ORU^R01 sender:       {rows / hl7_s:>8,.0f} messages/s  ({rows:,} in {hl7_s:.2f}s,"
                  f" one MLLP connection, each ACKed before the next; batches of {args.batch})")  # fmt: skip
            per_message = cpu_s / rows * 1e6
            print(f"  its own CPU:            {per_message:>8,.0f} us/message (build, send, read the ACK,"
                  f" claim and record): {rows / cpu_s:,.0f} messages/s of one core")  # fmt: skip
            ref_s = run_reference(port, messages)
            print(f"receiver alone, same msgs: {rows / ref_s:>8,.0f} messages/s  (pre-encoded, back to back;"
                  f" sender / ceiling = {ref_s / hl7_s:.2f})")  # fmt: skip
            fhir_s = run_fhir(url, args.bundle)
            fhir_rows = sent(url, FHIR)
            print(f"FHIR export, same rows:   {fhir_rows / fhir_s:>8,.0f} Observations/s  ({fhir_rows:,} in"
                  f" {fhir_s:.2f}s, 1 worker, bundles of {args.bundle})")  # fmt: skip
    finally:
        receiver.terminate()


if __name__ == "__main__":
    main()

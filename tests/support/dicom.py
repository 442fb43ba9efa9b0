"""Helpers for the DICOM export tests: synthetic strips, a scripted PACS (a real local HTTP server
answering what a test tells it to) and the independent readers (dcmtk's ``dcmdump``, dicom3tools'
``dciodvfy``)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import threading
import time
from array import array
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from devices.ecg import LEAD_NAMES, EcgStrip
from dicom_export.models import ClinicRef, PatientRef

MEASURED_AT = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
PATIENT = PatientRef(id="0d6c1d1e-7f57-4d59-9a38-5b6a2ef0c001", mrn="MRN-1001", name="Jane Doe")
CLINIC = ClinicRef(id="north", name="North Cardiology", timezone=ZoneInfo("Europe/Berlin"))


def samples(count: int, phase: int = 0) -> array[int]:
    """A smooth waveform of whole microvolts (±1.2 mV) with a spike every 0.8 s at 500 Hz."""
    return array(
        "h",
        (
            int(1200 * math.sin((i + phase) / 40)) + (800 if (i + phase) % 400 < 6 else 0)
            for i in range(count)
        ),
    )


def make_strip(
    leads: tuple[str, ...] | int = 1,
    *,
    seconds: float = 30.0,
    rate: float = 500.0,
    measured_at: datetime = MEASURED_AT,
    device_id: str = "ecg-card-1",
    interpretation: str | None = "sinus_rhythm",
) -> EcgStrip:
    names = LEAD_NAMES[:leads] if isinstance(leads, int) else leads
    count = int(seconds * rate)
    return EcgStrip(
        device_id, measured_at, rate, {n: samples(count, 7 * k) for k, n in enumerate(names)}, interpretation
    )


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (scripts/ensure-services installs dcmtk and dicom3tools)")
    return path


def dcmdump(path: Path) -> str:
    """dcmtk's dump of a file, refusing anything it cannot parse (``-E``: errors to stderr, exit 1)."""
    done = subprocess.run(
        [_tool("dcmdump"), "-E", "+L", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "E:" not in done.stderr, done.stderr
    return done.stdout


def dciodvfy(path: Path) -> list[str]:
    """dicom3tools' IOD verifier: the lines it prints (errors start with ``Error``)."""
    done = subprocess.run([_tool("dciodvfy"), str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


class ScriptedPacs:
    """A real HTTP server on 127.0.0.1 standing where a PACS would, answering each STOW-RS request
    with the next scripted :class:`Reply` (then 200 with an empty body) and recording the requests.
    For the answers Orthanc cannot be made to give: 400, 409, 5xx, 429, slow."""

    def __init__(self, replies: list[Reply]) -> None:
        self.replies = list(replies)
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        pacs = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with pacs.lock:
                    pacs.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    reply = pacs.replies.pop(0) if pacs.replies else Reply(200)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/dicom+json")
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    pass  # the client gave up waiting (the slow case)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/dicom-web"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> ScriptedPacs:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def failed_sop(sop_instance_uid: str | None, reason: int) -> bytes:
    """A PS3.18 STOW-RS answer naming the instance (or, with None, its one instance unnamed) in
    Failed SOP Sequence with ``reason``."""
    item: dict[str, object] = {
        "00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.9.1.2"]},
        "00081197": {"vr": "US", "Value": [reason]},
    }
    if sop_instance_uid is not None:
        item["00081155"] = {"vr": "UI", "Value": [sop_instance_uid]}
    return json.dumps({"00081198": {"vr": "SQ", "Value": [item]}}).encode()


class ScriptedScp:
    """A real DICOM Storage SCP (pynetdicom) on 127.0.0.1 answering each C-STORE with the next
    scripted status (then 0x0000) and recording the SOP Instance UIDs it was sent: for the statuses
    Orthanc cannot be made to give. AE title ``SCRIPTED``; it refuses associations that call it by
    another title."""

    AE_TITLE = "SCRIPTED"

    def __init__(self, statuses: list[int]) -> None:
        from pynetdicom import AE, evt
        from pynetdicom.sop_class import GeneralECGWaveformStorage, TwelveLeadECGWaveformStorage

        self.statuses = list(statuses)
        self.received: list[str] = []
        self.lock = threading.Lock()

        def on_store(event: Any) -> int:
            with self.lock:
                self.received.append(str(event.request.AffectedSOPInstanceUID))
                return self.statuses.pop(0) if self.statuses else 0x0000

        ae = AE(ae_title=self.AE_TITLE)
        ae.require_called_aet = True
        for sop_class in (GeneralECGWaveformStorage, TwelveLeadECGWaveformStorage):
            ae.add_supported_context(sop_class)
        self.server = ae.start_server(
            ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
        )
        self.port = self.server.server_address[1]
        self.address = f"{self.AE_TITLE}@127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()

    def __enter__(self) -> ScriptedScp:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

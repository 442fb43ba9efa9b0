"""A real PACS for the tests: Debian's Orthanc with its DICOMweb plugin, a process of the test's own.

It listens on free loopback ports, keeps its index and storage in a temporary directory, and runs
from a generated configuration that loads the DICOMweb plugin found in the ``orthanc-dicomweb``
package (``scripts/ensure-services`` installs both). ``dicomweb_url`` is what ``RPM_DICOMWEB_URL``
points at; :meth:`Orthanc.instances`, :meth:`Orthanc.qido` and :meth:`Orthanc.wado` read back what
it holds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.service import free_port

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
PLUGIN_NAME = "libOrthancDicomWeb.so"
AE_TITLE = "RPMTESTPACS"


def dicomweb_plugin() -> Path | None:
    """The DICOMweb plugin the ``orthanc-dicomweb`` package installed (its file list names it)."""
    try:
        listed = subprocess.run(
            ["dpkg", "-L", "orthanc-dicomweb"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        listed = None
    candidates = [
        Path(line) for line in (listed.stdout.splitlines() if listed else []) if PLUGIN_NAME in line
    ]
    candidates += [Path("/usr/share/orthanc/plugins") / PLUGIN_NAME]
    return next((path for path in candidates if path.is_file()), None)


def require_orthanc() -> Path:
    """The plugin path, or skip the test with the reason (``scripts/ensure-services`` installs them)."""
    plugin = dicomweb_plugin()
    if not Path(ORTHANC).is_file() or plugin is None:
        pytest.skip("Orthanc with the DICOMweb plugin is not installed (run scripts/ensure-services)")
    return plugin


class Orthanc:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.http_port = free_port()
        self.dicom_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.plugin = require_orthanc()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    @property
    def ae_address(self) -> str:
        """Its Storage SCP for C-STORE, as ``RPM_DICOM_AE`` names it."""
        return f"{AE_TITLE}@127.0.0.1:{self.dicom_port}"

    def write_config(self) -> Path:
        config = {
            "Name": "rpm-test-pacs",
            "StorageDirectory": str(self.directory / "storage"),
            "IndexDirectory": str(self.directory / "index"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": AE_TITLE,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "HttpServerEnabled": True,
            "DicomServerEnabled": True,
            "Plugins": [str(self.plugin)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
            "StableAge": 1,
            "OverwriteInstances": False,
            "StorageCompression": False,
        }
        path = self.directory / "orthanc.json"
        path.write_text(json.dumps(config, indent=2))
        return path

    def start(self, timeout_s: float = 60.0) -> None:
        config = self.write_config()
        self.process = subprocess.Popen(
            [ORTHANC, f"--logdir={self.directory}", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.directory / "stderr.log", "ab"),  # noqa: SIM115 - owned by the process
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited: {self.log_tail()}")
            try:
                if httpx.get(f"{self.dicomweb_url}/studies", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"Orthanc did not answer on {self.http_port}: {self.log_tail()}")

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout_s)
        self.process = None

    def log_tail(self, lines: int = 30) -> str:
        text = ""
        for path in sorted(self.directory.glob("*.log*")):
            text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        return text

    # ------------------------------------------------------------------ what it holds

    def instances(self) -> list[str]:
        """Orthanc's own ids of every instance it stores (its REST API, not DICOMweb)."""
        answer = httpx.get(f"{self.url}/instances", timeout=30)
        answer.raise_for_status()
        ids: list[str] = answer.json()
        return ids

    def clear(self) -> None:
        """Delete every patient (and with them every study, series and instance): a clean PACS."""
        for patient in httpx.get(f"{self.url}/patients", timeout=30).json():
            httpx.delete(f"{self.url}/patients/{patient}", timeout=30).raise_for_status()

    def qido(self, path: str, **params: str) -> list[dict[str, Any]]:
        """QIDO-RS search, e.g. ``qido("instances", PatientID="MRN-1")``: PS3.18 JSON datasets."""
        answer = httpx.get(
            f"{self.dicomweb_url}/{path}",
            params=params,
            headers={"Accept": "application/dicom+json"},
            timeout=30,
        )
        answer.raise_for_status()
        if not answer.content:
            return []
        found: list[dict[str, Any]] = answer.json()
        return found

    def wado(self, study: str, series: str, instance: str) -> bytes:
        """WADO-RS retrieve of one instance, as the Part 10 bytes the PACS returns."""
        answer = httpx.get(
            f"{self.dicomweb_url}/studies/{study}/series/{series}/instances/{instance}",
            headers={"Accept": 'multipart/related; type="application/dicom"'},
            timeout=30,
        )
        answer.raise_for_status()
        return _first_part(answer)

    def parse(self, orthanc_id: str) -> dict[str, Any]:
        """Orthanc's own parse of a stored instance (``/instances/{id}/tags?simplify``)."""
        answer = httpx.get(f"{self.url}/instances/{orthanc_id}/tags?simplify", timeout=30)
        answer.raise_for_status()
        tags: dict[str, Any] = answer.json()
        return tags

    def __enter__(self) -> Orthanc:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _first_part(response: httpx.Response) -> bytes:
    content_type = response.headers.get("Content-Type", "")
    boundary = next(
        (
            p.split("=", 1)[1].strip().strip('"')
            for p in content_type.split(";")
            if p.strip().startswith("boundary=")
        ),
        None,
    )
    if boundary is None:
        return response.content
    body = response.content
    start = body.index(f"--{boundary}".encode())
    head_end = body.index(b"\r\n\r\n", start) + 4
    end = body.index(f"\r\n--{boundary}".encode(), head_end)
    return body[head_end:end]

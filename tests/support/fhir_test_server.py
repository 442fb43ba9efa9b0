"""Start and drive the local FHIR R4 test server (``tests/fhir_server/server.js``).

The server is Medplum's FHIR router over its in-memory repository, with atomic transactions,
vital-signs checks, SMART Backend Services token endpoint and fault injection on top. This
module installs its npm packages on first use (cached in ``tests/fhir_server/node_modules``),
starts it on a free loopback port and offers the control calls the tests need.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

SERVER_DIR = Path(__file__).resolve().parents[1] / "fhir_server"
READY_TIMEOUT_S = 60.0


def ensure_installed() -> None:
    """``npm ci`` once (under a file lock) when node_modules is missing or stale."""
    marker = SERVER_DIR / "node_modules" / ".package-lock.json"
    lock_path = SERVER_DIR / ".install.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lockfile = SERVER_DIR / "package-lock.json"
        if marker.exists() and marker.stat().st_mtime >= lockfile.stat().st_mtime:
            return
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is needed to run the local FHIR test server")
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=SERVER_DIR,
            check=True,
            timeout=600,
        )


class FhirTestServer:
    """A running server process and its control API."""

    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.port = port
        self.origin = f"http://127.0.0.1:{port}"
        self.base_url = f"{self.origin}/fhir"
        self.token_url = f"{self.origin}/auth/token"
        self._http = httpx.Client(base_url=self.origin, timeout=30)

    def close(self) -> None:
        self._http.close()

    # control -------------------------------------------------------------------------------

    def _admin(self, path: str, body: dict[str, Any] | None = None) -> None:
        answer = self._http.post(f"/_admin/{path}", json=body or {})
        answer.raise_for_status()

    def reset(self) -> None:
        self._admin("reset")

    def set_auth(self, mode: str, *, bearer_token: str | None = None, token_ttl: int | None = None) -> None:
        body: dict[str, Any] = {"mode": mode}
        if bearer_token is not None:
            body["bearer_token"] = bearer_token
        if token_ttl is not None:
            body["token_ttl"] = token_ttl
        self._admin("auth", body)

    def register_client(self, client_id: str, jwks: dict[str, Any]) -> None:
        self._admin("clients", {"client_id": client_id, "jwks": jwks})

    def expire_tokens(self) -> None:
        self._admin("expire-tokens")

    def inject(self, *faults: dict[str, Any]) -> None:
        """Queue faults: ``{"action": "status"|"drop"|"delay"|"garbage", "when": "before"|
        "after_commit", "status", "retry_after", "delay_ms", "count", "target": "fhir"|"token",
        "match": "<part of the path and query>", "body"}``."""
        self._admin("faults", {"faults": list(faults)})

    def load_patients(self, patients: list[dict[str, Any]]) -> None:
        """Store Patient resources (with ids) as they are: the bulk load of the import tests."""
        for start in range(0, len(patients), 5000):
            self._admin("patients", {"patients": patients[start : start + 5000]})

    def put_group(self, group_id: str, members: list[Any]) -> None:
        """A Group whose members are ``Patient/<id>`` strings or member objects."""
        self._admin("group", {"id": group_id, "members": members})

    def stats(self) -> dict[str, Any]:
        answer = self._http.get("/_admin/stats")
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    # plain FHIR (admin view: the tests run these with auth "none") -----------------------

    def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        answer = self._http.post(
            f"/fhir/{resource['resourceType']}",
            content=json.dumps(resource),
            headers={"Content-Type": "application/fhir+json"},
        )
        answer.raise_for_status()
        created: dict[str, Any] = answer.json()
        return created

    def put(self, resource: dict[str, Any]) -> dict[str, Any]:
        answer = self._http.put(
            f"/fhir/{resource['resourceType']}/{resource['id']}",
            content=json.dumps(resource),
            headers={"Content-Type": "application/fhir+json"},
        )
        answer.raise_for_status()
        stored: dict[str, Any] = answer.json()
        return stored

    def search(self, resource_type: str, **params: str) -> list[dict[str, Any]]:
        params.setdefault("_count", "1000")
        answer = self._http.get(f"/fhir/{resource_type}", params=params)
        answer.raise_for_status()
        bundle = answer.json()
        return [entry["resource"] for entry in bundle.get("entry", [])]

    def post_raw(self, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        return self._http.post(
            "/fhir", content=body, headers={"Content-Type": "application/fhir+json", **(headers or {})}
        )


@contextmanager
def run_fhir_server(port: int = 0) -> Iterator[FhirTestServer]:
    ensure_installed()
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is needed to run the local FHIR test server")
    errors = tempfile.TemporaryFile(mode="w+")
    process = subprocess.Popen(
        [node, "server.js", "--host", "127.0.0.1", "--port", str(port)],
        cwd=SERVER_DIR,
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
        env={**os.environ, "NODE_ENV": "test"},
    )
    port_holder: list[int] = []

    def read_port() -> None:
        assert process.stdout is not None
        line = process.stdout.readline()
        if line:
            port_holder.append(int(json.loads(line)["port"]))

    reader = threading.Thread(target=read_port, daemon=True)
    reader.start()
    reader.join(READY_TIMEOUT_S)
    if not port_holder:
        process.kill()
        process.wait(timeout=10)
        errors.seek(0)
        raise RuntimeError(f"FHIR test server did not start: {errors.read()[-2000:]}")
    server = FhirTestServer(process, port_holder[0])
    try:
        yield server
    finally:
        server.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        errors.close()


@dataclass
class Ehr:
    """The local server and the Patient a test's readings belong to."""

    server: FhirTestServer
    patient_id: str

    @property
    def base_url(self) -> str:
        return self.server.base_url

"""A Mosquitto broker process of a test's own: its own port, config and persistence directory.

Used by the failure tests (broker restart, service kill) and by the TLS/credential tests, so
they never disturb the shared broker.
"""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.support.service import free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

BASE_CONFIG = """\
persistence true
persistence_location {data}/
log_dest file {data}/mosquitto.log
log_type error
log_type warning
log_type notice
connection_messages true
"""
# What the service needs from a broker; `service_config=True` uses the shipped file instead.
TUNING = """\
autosave_interval 1
max_inflight_messages 1000
max_queued_messages 200000
max_queued_bytes 0
persistent_client_expiration 1d
"""
SERVICE_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto" / "mosquitto.conf"


class Mosquitto:
    def __init__(self, directory: Path, *, port: int | None = None, extra: str = "",
                 listener: str | None = None, service_config: bool = False) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.extra = extra
        self.listener = listener or f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
        self.tuning = SERVICE_CONFIG.read_text() if service_config else TUNING
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.directory / "mosquitto.conf"

    def write_config(self) -> None:
        text = BASE_CONFIG.format(data=self.directory) + self.tuning
        own = self.listener + self.extra
        if not any(line.startswith("user ") for line in own.splitlines()):
            # Run as ourselves: started as root, Mosquitto would switch to the "mosquitto" user and
            # could not write its log and persistence file here (silently losing sessions).
            text = f"user {getpass.getuser()}\n" + text
        text += own
        self.config_path.write_text(text)

    def start(self, timeout_s: float = 10.0) -> None:
        self.write_config()
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.directory / "stderr.log", "ab"),  # noqa: SIM115 - owned by the process
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}: {self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> None:
        """SIGTERM: a clean stop (Mosquitto saves its persistence file). SIGKILL: a crash."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout_s)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 20) -> str:
        text = ""
        for name in ("stderr.log", "mosquitto.log"):
            path = self.directory / name
            if path.exists():
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        return text

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

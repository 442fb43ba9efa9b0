"""The parent of ``rpm-ingest serve --workers N``: N worker processes, one HTTP socket.

The parent binds the HTTP socket once and every worker inherits it (the kernel hands each new
connection to one of them), so N workers answer on one port without ``SO_REUSEPORT``. Workers are
whole ``serve`` processes (own pool, MQTT session, alert scheduler, export workers), started with
``python -m ingest serve`` and the parent's environment plus their replica name.

- SIGTERM/SIGINT to the parent: forwarded as SIGTERM to every worker (each stops cleanly: in a
  shared group it hands its share back); the parent exits 0 once all have exited.
- A worker that dies (killed by SIGKILL or another signal, or exiting with a status other than 0)
  is started again under the same replica name, after a delay that doubles while it keeps dying young.
- A worker that exits 0, or that SIGTERM/SIGINT ended before it could handle them (still starting
  up), was stopped on purpose (``kill -TERM <its pid>``: one fewer worker) and is not started
  again; when the last one has gone, so does the parent.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Final

logger = logging.getLogger(__name__)

RESTART_MIN_S: Final = 1.0
RESTART_MAX_S: Final = 30.0
#: A worker that ran this long before dying is restarted after the minimum delay again.
HEALTHY_AFTER_S: Final = 30.0
_POLL_S: Final = 0.2
#: Exit statuses of a worker stopped on purpose (Popen: -N = ended by signal N).
STOPPED_ON_PURPOSE: Final = frozenset({0, -signal.SIGTERM, -signal.SIGINT})


def listening_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """The HTTP socket every worker inherits (bound and listening, inheritable)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    delay_s: float = RESTART_MIN_S
    restarts: int = 0
    done: bool = False
    exit_codes: list[int] = field(default_factory=list)


class Supervisor:
    """Starts ``count`` workers and keeps them running until told to stop (see module docstring).

    ``command(index)`` is a worker's argument list, ``environment(index)`` what its environment
    adds to the parent's; ``pass_fds`` are the descriptors it inherits (the HTTP socket).
    """

    def __init__(
        self,
        count: int,
        *,
        command: Callable[[int], Sequence[str]],
        environment: Callable[[int], Mapping[str, str]],
        pass_fds: Sequence[int] = (),
        restart_min_s: float = RESTART_MIN_S,
        restart_max_s: float = RESTART_MAX_S,
    ) -> None:
        if count < 1:
            raise ValueError("a supervisor needs at least one worker")
        self._workers = [_Worker(i, delay_s=restart_min_s) for i in range(count)]
        self._command = command
        self._environment = environment
        self._pass_fds = tuple(pass_fds)
        self._restart_min_s = restart_min_s
        self._restart_max_s = restart_max_s
        self._stopping = threading.Event()
        self._lock = threading.RLock()  # stop() runs in a signal handler, maybe inside _check()

    # --- running
    def run(self) -> int:
        """Run until every worker has exited; exit status 0 (a clean stop, or all stopped)."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for worker in self._workers:
                self._start(worker)
            while not all(w.done for w in self._workers):
                self._check()
                self._stopping.wait(_POLL_S)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        logger.info("all workers stopped")
        return 0

    def stop(self) -> None:
        """Stop every worker cleanly (SIGTERM), start none again."""
        with self._lock:
            self._stopping.set()
            for worker in self._workers:
                if worker.process is not None and worker.process.poll() is None:
                    worker.process.send_signal(signal.SIGTERM)
                elif worker.process is None:
                    worker.done = True  # waiting for a restart: there is nothing to stop

    @property
    def pids(self) -> list[int | None]:
        """The workers' process ids, by index (None while one waits to be started again)."""
        with self._lock:
            return [w.process.pid if w.process is not None else None for w in self._workers]

    def _on_signal(self, sig: int, _frame: FrameType | None) -> None:
        logger.info("%s: stopping the workers", signal.Signals(sig).name)
        self.stop()

    def _start(self, worker: _Worker) -> None:
        env = {**os.environ, **self._environment(worker.index)}
        worker.process = subprocess.Popen(list(self._command(worker.index)), env=env, pass_fds=self._pass_fds)
        worker.started_at = time.monotonic()
        worker.restart_at = None
        logger.info("worker %d started (pid %d)", worker.index, worker.process.pid)

    def _check(self) -> None:
        now = time.monotonic()
        with self._lock:
            for worker in self._workers:
                if worker.done:
                    continue
                if worker.process is None:
                    if worker.restart_at is not None and now >= worker.restart_at:
                        worker.restarts += 1
                        self._start(worker)
                    continue
                code = worker.process.poll()
                if code is None:
                    continue
                worker.process = None
                worker.exit_codes.append(code)
                self._exited(worker, code, now)

    def _exited(self, worker: _Worker, code: int, now: float) -> None:
        if self._stopping.is_set():
            worker.done = True
            logger.info("worker %d stopped (%s)", worker.index, describe_exit(code))
            return
        if code in STOPPED_ON_PURPOSE:
            worker.done = True
            logger.info("worker %d stopped cleanly on its own signal: not started again", worker.index)
            return
        if now - worker.started_at >= HEALTHY_AFTER_S:
            worker.delay_s = self._restart_min_s
        worker.restart_at = now + worker.delay_s
        logger.warning(
            "worker %d %s: starting it again in %.0f s (same replica, same MQTT session)",
            worker.index,
            describe_exit(code),
            worker.delay_s,
        )
        worker.delay_s = min(worker.delay_s * 2, self._restart_max_s)


def describe_exit(code: int) -> str:
    """``exited with status 3`` or ``killed by SIGKILL`` (Popen's negative codes)."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


def worker_command(parent_pid: int, listen_fd: int) -> list[str]:
    """A worker: this interpreter running ``serve`` on the inherited socket, watching its parent."""
    return [
        sys.executable,
        "-m",
        "ingest",
        "serve",
        "--worker-of",
        str(parent_pid),
        "--listen-fd",
        str(listen_fd),
    ]

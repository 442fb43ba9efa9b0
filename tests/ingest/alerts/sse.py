"""A small Server-Sent Events client for the tests: reads a real stream in a thread."""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Event:
    id: str | None
    event: str | None
    data: dict[str, Any]


@dataclass
class SSEClient:
    base_url: str
    token: str
    params: dict[str, Any] = field(default_factory=dict)
    last_event_id: str | None = None
    events: queue.Queue[Event] = field(default_factory=queue.Queue)
    comments: list[str] = field(default_factory=list)
    retry: int | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sse-test-client", daemon=True)
        self._thread.start()
        if not self._opened.wait(15):
            raise AssertionError(f"stream did not open: {self.error!r}")
        if self.status != 200:
            raise AssertionError(f"stream answered {self.status}")

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "text/event-stream"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        try:
            with (
                httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(10, read=5)) as client,
                client.stream("GET", "/v1/alerts/stream", params=self.params, headers=headers) as r,
            ):
                self.status = r.status_code
                self.headers = dict(r.headers)
                if r.status_code != 200:
                    self._opened.set()
                    return
                current: dict[str, str] = {}
                for line in r.iter_lines():
                    if self._stop.is_set():
                        return
                    if line == "":
                        if "data" in current:
                            self.events.put(
                                Event(current.get("id"), current.get("event"), json.loads(current["data"]))
                            )
                        current = {}
                        continue
                    if line.startswith(":"):
                        self.comments.append(line[1:].strip())
                        self._opened.set()
                        continue
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "retry":
                        self.retry = int(value)
                    else:
                        current[name] = current.get(name, "") + value if name == "data" else value
        except (httpx.HTTPError, ValueError) as exc:
            if not self._stop.is_set():
                self.error = exc
        finally:
            self._opened.set()

    def next(self, timeout: float = 15.0) -> Event:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no event within {timeout}s (error: {self.error!r})") from None

    def next_matching(self, predicate: Any, timeout: float = 15.0) -> Event:
        deadline = time.monotonic() + timeout
        while True:
            event = self.next(max(deadline - time.monotonic(), 0.01))
            if predicate(event):
                return event

    def assert_quiet(self, seconds: float) -> None:
        """Nothing arrives for ``seconds`` (used after a positive check on another stream)."""
        try:
            event = self.events.get(timeout=seconds)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected event {event}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def __enter__(self) -> SSEClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

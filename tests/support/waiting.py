"""Polling until a condition holds, for tests that watch another thread or process."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for_value(
    check: Callable[[], T | None],
    timeout_s: float = 30.0,
    what: str = "condition",
    *,
    interval_s: float = 0.05,
) -> T:
    """Return the first truthy value ``check()`` gives; fail the test after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval_s)
    return value


def wait_until(
    check: Callable[[], bool], timeout_s: float = 30.0, what: str = "condition", *, interval_s: float = 0.05
) -> None:
    """Return once ``check()`` is true; fail the test after ``timeout_s`` seconds."""
    wait_for_value(check, timeout_s, what, interval_s=interval_s)

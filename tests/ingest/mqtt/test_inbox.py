"""The bounded hand-off between the network thread and the writer (real threads, no broker)."""

from __future__ import annotations

import threading
import time

import pytest

from ingest.mqtt.inbox import Inbox


def take(inbox: Inbox[int], **kw: float) -> list[int]:
    args = {"max_items": 100, "max_wait_s": 0.0, "first_timeout_s": 1.0, "idle_s": 0.01, "window": 100, **kw}
    return inbox.take_batch(**args)  # type: ignore[arg-type]


def test_put_waits_when_full_and_resumes_when_the_writer_takes() -> None:
    inbox: Inbox[int] = Inbox(max_items=3, max_bytes=1000)
    for i in range(3):
        assert inbox.put(i, 1)
    done = threading.Event()

    def producer() -> None:
        inbox.put(3, 1)  # must wait: nothing is dropped, nothing grows
        done.set()

    threading.Thread(target=producer, daemon=True).start()
    assert not done.wait(0.3)
    assert len(inbox) == 3
    batch = inbox.take_batch(max_items=2, max_wait_s=0, first_timeout_s=1, idle_s=0.01, window=10)
    assert batch == [0, 1]
    assert done.wait(2)
    assert inbox.waits == 1
    assert take(inbox, max_wait_s=0.05) == [2, 3]


def test_byte_budget_bounds_memory_but_a_single_large_message_passes() -> None:
    inbox: Inbox[str] = Inbox(max_items=100, max_bytes=10)
    assert inbox.put("big", 50)  # alone: accepted
    blocked = threading.Event()

    def producer() -> None:
        inbox.put("next", 5)
        blocked.set()

    threading.Thread(target=producer, daemon=True).start()
    assert not blocked.wait(0.3)
    assert inbox.take_batch(max_items=1, max_wait_s=0, first_timeout_s=1, idle_s=0.01, window=10) == ["big"]
    assert blocked.wait(2)


def test_close_wakes_a_waiting_producer_without_taking_its_item() -> None:
    inbox: Inbox[int] = Inbox(max_items=1, max_bytes=1000)
    inbox.put(1, 1)
    result: list[bool] = []
    t = threading.Thread(target=lambda: result.append(inbox.put(2, 1)), daemon=True)
    t.start()
    time.sleep(0.1)
    inbox.close()
    t.join(2)
    assert result == [False]
    assert inbox.drain() == [1]
    assert inbox.take_batch(max_items=5, max_wait_s=1, first_timeout_s=1, idle_s=0.1, window=5) == []


def test_batch_flushes_at_n_at_the_window_or_after_t() -> None:
    inbox: Inbox[int] = Inbox(max_items=100, max_bytes=10_000)
    for i in range(10):
        inbox.put(i, 1)
    assert len(inbox.take_batch(max_items=4, max_wait_s=10, first_timeout_s=1, idle_s=5, window=100)) == 4
    # The in-flight window is reached: nothing more can arrive before an acknowledgement.
    start = time.monotonic()
    assert take(inbox, max_wait_s=10, idle_s=5, window=6) == [4, 5, 6, 7, 8, 9]
    assert time.monotonic() - start < 5
    # Otherwise wait up to T for more (idle gap longer than T here).
    inbox.put(10, 1)
    threading.Timer(0.05, lambda: inbox.put(11, 1)).start()
    assert take(inbox, max_wait_s=0.5, idle_s=5) == [10, 11]
    # Nothing at all: an empty batch after first_timeout.
    assert take(inbox, max_wait_s=0.5, first_timeout_s=0.05, idle_s=5) == []


def test_invalid_bounds() -> None:
    with pytest.raises(ValueError):
        Inbox(max_items=0, max_bytes=10)

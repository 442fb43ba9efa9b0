"""The bounded hand-off between the network thread and the writer (real threads, no broker)."""

from __future__ import annotations

import threading
import time
from typing import Any, TypeVar

import pytest

from ingest.mqtt.inbox import Inbox

T = TypeVar("T")


def take(inbox: Inbox[T], **kw: Any) -> list[T]:
    args = {"max_items": 100, "max_wait_s": 0.0, "first_timeout_s": 1.0, "idle_s": 0.01, "window": 100, **kw}
    return inbox.take_batch(**args)


def take_in_thread(inbox: Inbox[T], **kw: Any) -> tuple[threading.Thread, list[list[T]]]:
    """``take`` on a thread of its own: the test sees whether the batch is still gathering."""
    result: list[list[T]] = []
    thread = threading.Thread(target=lambda: result.append(take(inbox, **kw)), daemon=True)
    thread.start()
    return thread, result


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


def test_batch_closes_once_it_holds_max_bytes_of_payload() -> None:
    inbox: Inbox[int] = Inbox(max_items=100, max_bytes=10_000)
    for i in range(6):
        inbox.put(i, 4)
    # Long waits and a window wider than the queue: only the byte cap closes these batches before
    # everything queued is taken. The item that reaches the cap is the batch's last one.
    assert take(inbox, max_wait_s=10, idle_s=5, max_bytes=10) == [0, 1, 2]  # 12 bytes >= 10
    assert take(inbox, max_wait_s=10, idle_s=5, max_bytes=8) == [3, 4]  # exactly 8
    assert take(inbox, max_wait_s=10, idle_s=5, max_bytes=1) == [5]


def test_an_item_larger_than_max_bytes_is_still_taken_alone() -> None:
    inbox: Inbox[str] = Inbox(max_items=100, max_bytes=10_000)
    inbox.put("big", 50)
    inbox.put("small", 1)
    inbox.put("tiny", 1)
    assert take(inbox, max_wait_s=10, idle_s=5, max_bytes=10) == ["big"]
    assert take(inbox, max_wait_s=10, idle_s=5, max_bytes=10, window=2) == ["small", "tiny"]


def test_without_max_bytes_the_inbox_s_own_byte_budget_caps_the_batch() -> None:
    inbox: Inbox[int] = Inbox(max_items=100, max_bytes=6)
    inbox.put(0, 4)
    inbox.put(1, 2)  # the inbox is full (6 bytes); take_batch alone stops at 6 as well
    thread, result = take_in_thread(inbox, max_wait_s=30, idle_s=30)
    thread.join(10)
    assert result == [[0, 1]]


def test_messages_held_earlier_count_against_the_window() -> None:
    """The batch closes when it and the messages taken earlier and not yet acknowledged fill the
    broker's window (nothing more can arrive), not on the window alone."""
    inbox: Inbox[int] = Inbox(max_items=100, max_bytes=10_000)
    inbox.put(0, 1)
    inbox.put(1, 1)
    # 2 in the batch + 3 held < 6: the broker may send one more, so the batch waits for it.
    thread, result = take_in_thread(inbox, max_wait_s=30, idle_s=30, window=6, held=lambda: 3)
    thread.join(0.3)
    assert thread.is_alive() and result == []
    inbox.put(2, 1)  # 3 + 3: the window is full, the batch goes without waiting out idle_s
    thread.join(10)
    assert result == [[0, 1, 2]]

    # The held messages alone fill the window: what is queued goes at once.
    inbox.put(3, 1)
    thread, result = take_in_thread(inbox, max_wait_s=30, idle_s=30, window=6, held=lambda: 6)
    thread.join(10)
    assert result == [[3]]


def test_held_is_asked_again_after_each_arrival() -> None:
    """An acknowledgement while the batch gathers frees room in the window: the batch then waits
    for what the broker may now send instead of closing on the window it saw first."""
    inbox: Inbox[int] = Inbox(max_items=100, max_bytes=10_000)
    held = [4]
    inbox.put(0, 1)
    thread, result = take_in_thread(inbox, max_wait_s=30, idle_s=30, window=6, held=lambda: held[0])
    thread.join(0.3)
    assert thread.is_alive()  # 1 + 4 < 6
    held[0] = 0  # the earlier batch was acknowledged: room for 6
    inbox.put(1, 1)  # 2 + 0 < 6: still gathering
    thread.join(0.3)
    assert thread.is_alive() and result == []
    for i in range(2, 6):
        inbox.put(i, 1)
    thread.join(10)
    assert result == [[0, 1, 2, 3, 4, 5]]

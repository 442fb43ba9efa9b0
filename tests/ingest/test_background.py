"""The background thread of the service's loops: a loop that outlives its stop's timeout is never
joined by a second one."""

from __future__ import annotations

import threading

from ingest.background import BackgroundThread

WAIT_S = 10.0


def _alive(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


def test_a_loop_that_outlives_its_stop_is_not_joined_by_a_second_one() -> None:
    name = f"slow-loop-{id(object())}"
    release = threading.Event()  # the loop ignores its stop until released
    entered = threading.Semaphore(0)
    loops: list[threading.Thread] = []

    def loop() -> None:
        loops.append(threading.current_thread())
        entered.release()
        release.wait(WAIT_S)
        bg.stopping.wait(WAIT_S)

    bg = BackgroundThread(name, loop, join_timeout_s=0.05)
    try:
        bg.start()
        assert entered.acquire(timeout=WAIT_S)
        [first] = loops
        bg.start()  # running already: nothing
        assert _alive(name) == [first]
        bg.stop()  # the join times out: the loop still runs
        assert first.is_alive()
        bg.start()  # refused while the old loop runs
        assert _alive(name) == [first] and len(loops) == 1

        release.set()
        first.join(WAIT_S)
        assert not first.is_alive()
        bg.start()  # the old loop is gone: a new one starts
        assert entered.acquire(timeout=WAIT_S)
        assert len(loops) == 2 and _alive(name) == [loops[1]]
    finally:
        release.set()
        bg.stop()
        for t in loops:
            t.join(WAIT_S)
    assert _alive(name) == []

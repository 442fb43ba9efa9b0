"""The sender loop of a thread-based outbox destination (the FHIR and DICOM exports): run rounds
until told to stop, waiting a poll interval when a round found less than a full claim, and backing
off exponentially (capped) when the database or the peer is away or a round fails unexpectedly.

The thread never dies of an error: rows in hand keep their lease, so whatever a failed round did
not record goes out again once the lease runs out.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import psycopg


@dataclass(frozen=True, slots=True)
class RoundOutcome:
    """What one round did: rows claimed, and whether the peer was unavailable (its rows now wait
    their own backoff; the peer is asked again after the loop's)."""

    claimed: int
    peer_unavailable: bool = False


@dataclass(frozen=True, slots=True)
class Pacing:
    """``poll_s`` between rounds that found little to do; failures wait ``poll_s * 2**failures``
    capped at ``max_pause_s`` (the exponent stops at 30: far past any cap, and a float still)."""

    poll_s: float
    batch_size: int
    max_pause_s: float

    def pause(self, failures: int) -> float:
        return min(self.max_pause_s, self.poll_s * 2.0 ** min(failures, 30))


def run_rounds(
    name: str,
    run_once: Callable[[], RoundOutcome],
    pacing: Pacing,
    stopping: threading.Event,
    log: logging.Logger,
    on_error: Callable[[], None] = lambda: None,
) -> None:
    """Call ``run_once`` until ``stopping`` is set. ``on_error`` counts storage and unexpected
    failures (for /metrics)."""
    failures = 0
    while not stopping.is_set():
        try:
            done = run_once()
        except psycopg.Error as exc:  # PoolTimeout included: the database is away
            failures += 1
            on_error()
            delay = pacing.pause(failures)
            log.warning("%s: storage unavailable (%s); retrying in %.0fs", name, exc, delay)
            stopping.wait(delay)
            continue
        except Exception:  # noqa: BLE001 - the thread must not die; the row lease protects data
            failures += 1
            on_error()
            log.exception("%s round failed; retrying", name)
            stopping.wait(pacing.pause(failures))
            continue
        if done.peer_unavailable:
            failures += 1
            stopping.wait(pacing.pause(min(failures, 10)))
            continue
        failures = 0
        if done.claimed < pacing.batch_size:
            stopping.wait(pacing.poll_s)

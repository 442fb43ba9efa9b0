"""Which Observation profiles a clinic's EHR expects (``clinics.observation_profile``), as the
export's reader needs it for every claimed row: read from the database, kept for a few seconds
(a change through ``PATCH /v1/clinics/{id}`` applies to rows claimed after that)."""

from __future__ import annotations

import threading
import time
from typing import Any, Final

import psycopg

TTL_S: Final = 10.0
_cache: dict[str, tuple[str, float]] = {}
_lock = threading.Lock()


def clinic_profile(conn: psycopg.Connection[Any], clinic_id: str) -> str:
    now = time.monotonic()
    with _lock:
        found = _cache.get(clinic_id)
    if found is not None and found[1] > now:
        return found[0]
    row = conn.execute("SELECT observation_profile FROM clinics WHERE id = %s", (clinic_id,)).fetchone()
    profile = "base" if row is None else str(row[0])
    with _lock:
        if len(_cache) > 10_000:
            _cache.clear()
        _cache[clinic_id] = (profile, now + TTL_S)
    return profile


def forget() -> None:
    """Drop what is cached (tests that change a clinic's profile and export at once)."""
    with _lock:
        _cache.clear()

"""Interpreter settings for a long-running service process, applied once it has started.

Both were measured with the benchmarks under ``bench/`` on a 2-core machine:

- **Thread switch interval 1 ms** (CPython's default is 5 ms). Worker threads spend much of a
  request waiting on the database; when an answer arrives, the thread should not wait up to 5 ms
  for another thread (parsing a large batch) to hand over the interpreter. HTTP ingest gained
  about 6 % throughput (``bench/ingest_http.py``).
- **Freezing the start-up heap** (``gc.freeze``). Everything built at start-up (modules, schemas,
  routes, the catalogue) lives as long as the process; frozen, it is left out of every later
  collection. Unfrozen, each full collection walked it all (about 27 ms each, several a minute
  under load), and those pauses landed on whichever batch happened to trigger them
  (``bench/alerts.py``).
"""

from __future__ import annotations

import gc
import sys
from typing import Final

SWITCH_INTERVAL_S: Final = 0.001


def tune_for_service() -> None:
    """Call once the service is built and its components started, before serving."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    gc.collect()  # what start-up left behind goes now, not into the frozen set
    gc.freeze()

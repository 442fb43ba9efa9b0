"""Replica names of the workers of one ``serve --workers N`` (pure).

Worker ``i`` is replica ``<RPM_REPLICA>-<i>`` (or ``<i>`` without one), so its MQTT client id is
``<RPM_MQTT_CLIENT_ID>-<replica>``: the same for a worker restarted after a crash, which then
finds its session and the messages it had not acknowledged.
"""

from __future__ import annotations

import socket
from typing import Final

from ingest.mqtt.config import HOSTNAME_REPLICA

#: Variables the parent sets for each worker (the rest of the environment is inherited).
REPLICA_VARIABLE: Final = "RPM_REPLICA"
WORKERS_VARIABLE: Final = "RPM_WORKERS"


def worker_replica(base: str | None, index: int) -> str:
    """The replica name of worker ``index`` (``hostname`` in ``base`` resolved here, once)."""
    if base is None:
        return str(index)
    if base == HOSTNAME_REPLICA:
        base = socket.gethostname()
    return f"{base}-{index}"


def worker_environment(base: str | None, index: int) -> dict[str, str]:
    """What a worker's environment adds to the parent's: its replica, and that it is one process."""
    return {REPLICA_VARIABLE: worker_replica(base, index), WORKERS_VARIABLE: "1"}

"""HTTP server limits: the options every uvicorn server of this service runs with.

Header size is enforced by h11 (``h11_max_incomplete_event_size``: the request line plus all
headers); a larger head is refused before any application code runs. Body size and readings per
request are enforced by the application (``BodyLimit`` and the readings route).
"""

from __future__ import annotations

from typing import Any

from ingest.settings import Settings


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config`` that bound what one client can make us hold."""
    return {
        "http": "h11",
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "server_header": False,
        "date_header": True,
        "access_log": False,  # request lines carry patient ids in their paths; the audit log has them
        "timeout_keep_alive": 5,
        "timeout_graceful_shutdown": 10,
    }

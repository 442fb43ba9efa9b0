"""Logging set-up for the command line (library code only ever calls logging.getLogger)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


#: Libraries whose INFO lines are chatter for every command: shown from WARNING up.
_LIBRARY_CHATTER = ("httpx", "httpcore", "amqtt", "transitions", "bumble")

#: What runs inside ``rpm-ingest demo`` and says at INFO what a person trying the demo does not
#: need: every HTTP request and uvicorn's start and stop (the banner says where to go), and the
#: emulated Bluetooth home's links, record transfers and MQTT connections (its gateway's start
#: and stop stay). Their warnings and errors still show; RPM_LOG_LEVEL=DEBUG shows everything.
DEMO_CHATTER = ("uvicorn.access", "uvicorn.error", "devices.ble", "devices.mqtt.publisher")


def configure_logging(level: str = "INFO", fmt: str = "text", *, quiet: tuple[str, ...] = ()) -> None:
    """One handler on the root logger at ``level``; library chatter, and the loggers named in
    ``quiet`` unless ``level`` is DEBUG, only from WARNING up."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in _LIBRARY_CHATTER:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    if root.level > logging.DEBUG:
        for name in quiet:
            logging.getLogger(name).setLevel(max(logging.WARNING, root.level))

"""An embedded PostgreSQL under RPM_DATA_DIR for `serve` and `demo` when no database URL is set."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ingest.errors import EmbeddedServiceError

logger = logging.getLogger(__name__)


@contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """Start (or reuse) PostgreSQL with its data in ``data_dir/postgres``; yield its URL; stop it."""
    pgdata = (data_dir / "postgres").resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(data_dir.resolve()))  # pgserver's socket directory

    import pgserver  # heavy import, only when the embedded server is wanted
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    except Exception as exc:  # pgserver raises subprocess and assertion errors alike
        raise EmbeddedServiceError(f"embedded PostgreSQL did not start in {pgdata}: {exc}") from exc
    logger.info("embedded PostgreSQL running with data in %s", pgdata)
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        logger.info("embedded PostgreSQL stopped")

"""An embedded PostgreSQL under RPM_DATA_DIR for `serve` and `demo` when no database URL is set.

pgserver runs initdb and pg_ctl and logs every command line and its whole output at INFO; those
lines are this module's DEBUG (its warnings and errors, e.g. a failed start with the server's
log, stay what they are). PostgreSQL's own log is ``postgres/log`` under the data directory.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ingest.errors import EmbeddedServiceError

logger = logging.getLogger(__name__)


class _PgserverChatter(logging.Filter):
    """pgserver's INFO lines (commands run, their output, status polling) as DEBUG: shown only
    when DEBUG is on for this module."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logger.isEnabledFor(logging.DEBUG)


def _quiet_pgserver() -> None:
    pgserver_logger = logging.getLogger("pgserver")
    if not any(isinstance(f, _PgserverChatter) for f in pgserver_logger.filters):
        pgserver_logger.addFilter(_PgserverChatter())


#: longest Unix socket path we let pgserver build (sun_path holds 108 bytes on Linux, 104 on macOS)
_SOCKET_PATH_MAX = 100


def _runtime_dir(data_dir: Path) -> Path:
    """``run`` beside the data, unless a socket under it (``python_PostgresServer/<hash>/
    .s.PGSQL.5432``, where pgserver puts it when the data path is too long for one) would not
    fit: then a directory of this user's for this data directory in the system's temporary one."""
    run = (data_dir / "run").resolve()
    socket = run / "python_PostgresServer" / ("0" * 10) / ".s.PGSQL.5432"
    if len(os.fsencode(socket)) <= _SOCKET_PATH_MAX:
        return run
    digest = hashlib.sha256(os.fsencode(run)).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"rpm-ingest-{os.getuid()}-{digest}"


def _private_runtime_dir(data_dir: Path) -> None:
    """Give pgserver a runtime directory (its lock file; the socket when the data path is too
    long for one) unless the environment has one.

    pgserver asks platformdirs, which reads XDG_RUNTIME_DIR and warns when it is unset or is not
    a private (0700) directory of this user. The data directory itself will not do: run as root,
    pgserver opens every parent of its data for the ``pgserver`` system user (0755), and a socket
    below a long data path would not fit. A directory someone else owns is left alone (and
    platformdirs' warning then tells of it).
    """
    if os.environ.get("XDG_RUNTIME_DIR"):
        return
    run = _runtime_dir(data_dir)
    run.mkdir(mode=0o700, parents=True, exist_ok=True)
    if run.stat().st_uid == os.getuid() and not run.is_symlink():
        run.chmod(0o700)  # pgserver may have opened it for its socket last time
    os.environ["XDG_RUNTIME_DIR"] = str(run)


@contextmanager
def embedded_postgres(data_dir: Path) -> Iterator[str]:
    """Start (or reuse) PostgreSQL with its data in ``data_dir/postgres``; yield its URL; stop it."""
    pgdata = (data_dir / "postgres").resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    _private_runtime_dir(data_dir)
    _quiet_pgserver()

    import pgserver  # heavy import, only when the embedded server is wanted
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    except Exception as exc:  # pgserver raises subprocess and assertion errors alike
        raise EmbeddedServiceError(
            f"embedded PostgreSQL did not start in {pgdata} (its log: {pgdata / 'log'}): {exc}"
        ) from exc
    logger.info("embedded PostgreSQL running with data in %s", pgdata)
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        logger.info("embedded PostgreSQL stopped")

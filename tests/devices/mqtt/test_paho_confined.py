"""paho-mqtt stays behind two modules: the client factory every MQTT client of the project goes
through, and the service's consumer session (its own callbacks: manual ack, subscriptions)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.paths import ROOT

ALLOWED = {"devices/mqtt/client.py", "ingest/mqtt/session.py"}


def _imports_paho(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        if any(name.split(".")[0] == "paho" for name in names):
            return True
    return False


def test_only_the_client_factory_and_the_consumer_session_import_paho() -> None:
    importing = {
        path.relative_to(ROOT).as_posix()
        for package in ("devices", "ingest", "fhir_export")
        for path in (ROOT / package).rglob("*.py")
        if _imports_paho(path)
    }
    assert importing == ALLOWED

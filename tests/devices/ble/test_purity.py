"""The decoders stay pure: importing them pulls in no radio, network, database or event loop."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import devices.ble

DECODER_MODULES = sorted(
    f"devices.ble.{p.stem}"
    for p in Path(devices.ble.__file__).parent.glob("*.py")
    if p.stem != "__init__" and not p.stem.startswith("collector")
)
FORBIDDEN = ("bleak", "bleak_retry_connector", "bumble", "asyncio", "paho", "psycopg", "psycopg_pool")


def test_importing_the_decoders_imports_no_io_library() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for name in {DECODER_MODULES!r} + ['devices.ble']:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
    assert "devices.ble.heart_rate" in DECODER_MODULES


def test_decoder_sources_do_not_read_the_clock() -> None:
    for name in DECODER_MODULES:
        source = Path(devices.ble.__file__).with_name(name.rsplit(".", 1)[1] + ".py").read_text()
        for forbidden in ("datetime.now", ".utcnow(", "time.time(", "date.today(", "import asyncio"):
            assert forbidden not in source, f"{name} uses {forbidden}"

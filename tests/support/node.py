"""Node.js helpers for test servers that only exist as npm packages (installed on first use)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def ensure_node_project(folder: Path, *, legacy_peer_deps: bool = False) -> str:
    """Install ``folder``'s locked npm dependencies if needed; return the node binary (or skip)."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js and npm are not installed (scripts/ensure-services installs them as root)")
    if not (folder / "node_modules").is_dir():
        args = [npm, "ci" if (folder / "package-lock.json").exists() else "install"]
        args += ["--no-audit", "--no-fund"] + (["--legacy-peer-deps"] if legacy_peer_deps else [])
        subprocess.run(args, cwd=folder, check=True, capture_output=True, timeout=600)
    return node

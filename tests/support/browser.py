"""Headless Chromium for the browser tests: where it is, how it starts, the page size, what a
page reported, and screenshots.

Chromium is Debian's ``/usr/bin/chromium`` (``scripts/ensure-services`` installs it); Playwright
cannot download its own browser here.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.paths import DOCS_DIR

CHROMIUM = os.environ.get("RPM_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
#: Tablet landscape: the narrowest layout the dashboard is designed for with side-by-side columns.
VIEWPORT = {"width": 1180, "height": 820}
SCREENSHOT_DIR = DOCS_DIR / "screenshots"


@dataclass
class PageProblems:
    """Console errors and CSP violations seen by a page; a test fails if any were seen."""

    messages: list[str] = field(default_factory=list)


def save_screenshot(page: Any, name: str, tmp_path: Path) -> Path:
    """Screenshot into the test's directory; also into docs/ when RPM_UPDATE_SCREENSHOTS=1."""
    target = tmp_path / f"{name}.png"
    page.screenshot(path=str(target), full_page=True)
    if os.environ.get("RPM_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copy(target, SCREENSHOT_DIR / f"{name}.png")
    return target

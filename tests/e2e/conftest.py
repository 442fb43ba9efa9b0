"""Browser tests: the real service (all its components) and headless Chromium driven by Playwright.

Chromium is Debian's ``/usr/bin/chromium`` (``scripts/ensure-services`` installs it); Playwright
cannot download its own browser here. When neither can exist, the tests skip with the reason.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest.runtime import default_components
from ingest.settings import Settings
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, PageProblems
from tests.support.service import RunningService, running_service


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed (pip install -e '.[dev]')")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium (scripts/ensure-services)")
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


@pytest.fixture
def problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def page(browser: Any, problems: PageProblems, service: RunningService) -> Iterator[Any]:
    """A fresh browser tab; closed before the service stops (its live stream would hold it up)."""
    context = browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="Europe/London")
    pg = context.new_page()
    pg.set_default_timeout(15_000)

    def on_console(msg: Any) -> None:
        text = msg.text
        if msg.type == "error" and "Failed to load resource" not in text:
            problems.messages.append(text)
        if "Content Security Policy" in text or "Refused to" in text:
            problems.messages.append(text)

    pg.on("console", on_console)
    pg.on("pageerror", lambda exc: problems.messages.append(f"page error: {exc}"))
    yield pg
    context.close()
    assert not problems.messages, f"the page reported problems: {problems.messages}"


@pytest.fixture
def service(settings: Settings) -> Iterator[RunningService]:
    """The whole service as `serve` runs it: dashboard, MQTT consumer, alerts, export."""
    with running_service(settings, factories=default_components()) as svc:
        yield svc

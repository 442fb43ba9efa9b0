"""The emulated home's loop exception handler: bumble's own callback errors are INFO, the rest is
left to asyncio's default handler."""

from __future__ import annotations

import asyncio
import logging
import os

import pytest

from devices.ble.emulated.home import _radio_quirks_as_info


def _raised_in(filename: str) -> BaseException:
    namespace: dict[str, object] = {}
    exec(compile("def fail():\n    assert None is not None\n", filename, "exec"), namespace)
    try:
        namespace["fail"]()  # type: ignore[operator]
    except AssertionError as exc:
        return exc
    raise AssertionError("did not raise")


@pytest.mark.parametrize(
    ("filename", "level"),
    [
        (os.path.join(os.sep, "venv", "site-packages", "bumble", "device.py"), logging.INFO),
        (os.path.join(os.sep, "work", "devices", "ble", "collector.py"), logging.ERROR),
    ],
)
def test_only_the_radio_s_own_errors_become_info(
    filename: str, level: int, caplog: pytest.LogCaptureFixture
) -> None:
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.INFO):
            context = {"message": "Exception in callback", "exception": _raised_in(filename)}
            _radio_quirks_as_info(loop, context)
    finally:
        loop.close()
    assert [r.levelno for r in caplog.records] == [level]

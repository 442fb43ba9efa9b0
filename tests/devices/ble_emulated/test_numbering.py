"""The emulated record devices' numbering survives a restart, as a real device's does."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from devices.ble.emulated.numbering import RecordNumbering
from devices.ble.emulated.record_devices import BloodPressureCuff, GlucoseMeter

METER = "F1:00:00:00:00:06"
CUFF = "F1:00:00:00:00:02"


def test_a_device_started_again_carries_on_numbering(tmp_path: Path) -> None:
    path = tmp_path / "numbers.json"
    meter = GlucoseMeter(METER, "Meter", numbering=RecordNumbering(path))
    assert [meter.measure(100.0), meter.measure(101.0)] == [1, 2]
    cuff = BloodPressureCuff(CUFF, "Cuff", first_sequence=41, numbering=RecordNumbering(path))
    assert cuff.next_sequence == 41

    again = GlucoseMeter(METER.lower(), "Meter", numbering=RecordNumbering(path))
    assert again.records == []  # its memory is not kept, its numbering is
    assert again.measure(102.0) == 3
    assert json.loads(path.read_text()) == {METER: 4}


def test_without_numbering_a_device_starts_at_its_first_sequence(tmp_path: Path) -> None:
    assert GlucoseMeter(METER, "Meter").measure(100.0) == 1
    assert GlucoseMeter(METER, "Meter", first_sequence=7).measure(100.0) == 7


def test_numbering_wraps_like_the_sequence(tmp_path: Path) -> None:
    path = tmp_path / "numbers.json"
    meter = GlucoseMeter(METER, "Meter", first_sequence=0xFFFF, numbering=RecordNumbering(path))
    assert meter.measure(100.0) == 0xFFFF
    assert RecordNumbering(path).next_sequence(METER) == 0


def test_an_unreadable_file_starts_afresh_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "numbers.json"
    path.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="devices.ble.emulated.numbering"):
        numbering = RecordNumbering(path)
    assert numbering.next_sequence(METER) == 1
    assert "unreadable" in caplog.text
    numbering.advance(METER, 5)
    assert RecordNumbering(path).next_sequence(METER) == 5

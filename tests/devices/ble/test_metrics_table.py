"""The decoders' tables against the contract: metric names, canonical units, status flags."""

from __future__ import annotations

import re

from devices.ble.blood_pressure import decode_blood_pressure
from devices.ble.cgm import CAL_TEMP_FLAGS, STATUS_FLAGS, WARNING_FLAGS
from devices.ble.glucose import SENSOR_STATUS_FLAGS
from devices.ble.pulse_oximetry import DEVICE_SENSOR_STATUS_FLAGS, MEASUREMENT_STATUS_FLAGS
from devices.ble.result import CANONICAL_UNITS
from devices.catalogue import load_catalogue
from devices.models import MAX_STATUS_FLAGS
from devices.units import to_canonical

SNAKE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
# every original unit a decoder can emit, per metric
ORIGINAL_UNITS = {
    "heart_rate": ["/min"],
    "spo2": ["%"],
    "body_temperature": ["Cel", "[degF]"],
    "systolic_bp": ["mm[Hg]", "kPa"],
    "diastolic_bp": ["mm[Hg]", "kPa"],
    "mean_arterial_pressure": ["mm[Hg]", "kPa"],
    "body_weight": ["kg", "[lb_av]"],
    "blood_glucose": ["mg/dL", "kg/L", "mol/L"],
}


def test_canonical_units_match_the_catalogue() -> None:
    catalogue = load_catalogue()
    for metric, unit in CANONICAL_UNITS.items():
        assert catalogue[metric].ucum_unit == unit, metric


def test_every_original_unit_is_convertible_by_the_service() -> None:
    assert set(ORIGINAL_UNITS) == set(CANONICAL_UNITS)
    for metric, units in ORIGINAL_UNITS.items():
        for unit in units:
            to_canonical(metric, 1.0, unit)


def test_status_flag_names_fit_the_wire_model() -> None:
    tables = [SENSOR_STATUS_FLAGS, MEASUREMENT_STATUS_FLAGS, DEVICE_SENSOR_STATUS_FLAGS]
    tables += [STATUS_FLAGS, CAL_TEMP_FLAGS, WARNING_FLAGS]
    for table in tables:
        bits = [bit for bit, _ in table]
        assert len(bits) == len(set(bits))
        for _, name in table:
            assert SNAKE.fullmatch(name) and len(name) <= 64, name
    # the most flags one reading can carry stays inside the wire limit
    plx = len(MEASUREMENT_STATUS_FLAGS) + len(DEVICE_SENSOR_STATUS_FLAGS) + 2
    cgm = len(STATUS_FLAGS) + len(CAL_TEMP_FLAGS) + len(WARNING_FLAGS)
    assert max(plx, cgm, len(SENSOR_STATUS_FLAGS) + 1) <= MAX_STATUS_FLAGS


def test_blood_pressure_flags_use_the_contract_names() -> None:
    # docs/contract/mqtt.md example: ["irregular_pulse", "cuff_too_loose", "body_movement"]
    (systolic, *_) = decode_blood_pressure(bytes.fromhex("1078005000ff070700")).measurements
    assert systolic.status == ("body_movement", "cuff_too_loose", "irregular_pulse")

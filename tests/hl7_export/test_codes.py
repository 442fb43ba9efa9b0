"""The MDC codes in the catalogue (devices/data/mdc.csv), as literals: catches one metric coded
with another's code. Sources: IEEE 11073-10101 via NIST RTMMS and the IHE PCD Rosetta table."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devices.catalogue import load_catalogue, parse_catalogue, parse_mdc
from devices.errors import CatalogueError
from hl7_export import control_id
from hl7_export.codes import build_codes


def test_mdc_codes_are_the_known_ones() -> None:
    codes = {m.name: (m.mdc.code, m.mdc.refid) if m.mdc else None for m in load_catalogue().values()}
    assert codes == {
        "heart_rate": ("147842", "MDC_ECG_HEART_RATE"),
        "respiratory_rate": ("151562", "MDC_RESP_RATE"),
        "spo2": ("150456", "MDC_PULS_OXIM_SAT_O2"),
        "body_temperature": ("150364", "MDC_TEMP_BODY"),
        "systolic_bp": ("150021", "MDC_PRESS_BLD_NONINV_SYS"),
        "diastolic_bp": ("150022", "MDC_PRESS_BLD_NONINV_DIA"),
        "mean_arterial_pressure": ("150023", "MDC_PRESS_BLD_NONINV_MEAN"),
        "body_weight": ("188736", "MDC_MASS_BODY_ACTUAL"),
        "blood_glucose": ("160184", "MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD"),
        "steps": None,
    }
    # partition 2 (SCADA): code = 2 * 65536 + term code
    assert all(int(c[0]) // 65536 == 2 for c in codes.values() if c)
    table = build_codes(load_catalogue())
    assert table["steps"].coding.system == "LN" and table["spo2"].coding.alt_system == "LN"


CATALOGUE = parse_catalogue(
    "metric,ucum_unit,loinc,loinc_display,fhir_shape,plausible_min,plausible_max,notes\n"
    "heart_rate,/min,8867-4,Heart rate,x,20,300,\n"
)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("metric,code\n", "columns"),
        ("metric,mdc_code,mdc_refid,source\n", "lacks"),
        ("metric,mdc_code,mdc_refid,source\nheart_rate,147842,MDC_ECG_HEART_RATE,\n", "cites no source"),
        ("metric,mdc_code,mdc_refid,source\nheart_rate,14x,MDC_X,s\n", "bad code"),
        ("metric,mdc_code,mdc_refid,source\nheart_rate,147842,,s\n", "bad code"),
        ("metric,mdc_code,mdc_refid,source\nnope,1,MDC_X,s\n", "unknown"),
        ("metric,mdc_code,mdc_refid,source\nheart_rate,1,MDC_X,s\nheart_rate,1,MDC_X,s\n", "twice"),
    ],
)
def test_mdc_table_errors(text: str, match: str) -> None:
    with pytest.raises(CatalogueError, match=match):
        parse_mdc(text, CATALOGUE)


def test_control_id_is_stable_per_measurement() -> None:
    t = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    first = control_id("cuff-7", "bp_panel", t)
    assert first == control_id("cuff-7", "bp_panel", t.astimezone())  # same instant, any zone
    assert len(first) == 20 and first.startswith("R")
    assert len({first, control_id("cuff-8", "bp_panel", t), control_id("cuff-7", "heart_rate", t)}) == 3

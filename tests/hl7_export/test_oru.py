"""ORU^R01 as built by hl7_export, read back and validated by hl7apy (not the library that built it).

Expected wire values are literals here (IHE PCD-01 / contract §4), so a test pins the format.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from devices.catalogue import load_catalogue
from devices.models import Reading
from hl7_export import DeviceRef, Header, MappingError, OruBuilder, OruItem, PatientRef, build_codes, encode
from hl7_export.oru import format_number, split_name

T = datetime(2026, 3, 1, 9, 30, 15, tzinfo=UTC)
NOW = datetime(2026, 3, 1, 10, 0, 0, 250000, tzinfo=UTC)
HEADER = Header("RPM-INGEST", "clinic-a", "EHR", "HOSPITAL", "HOSP-MRN")


def reading(metric: str, value: float, unit: str, at: datetime = T) -> Reading:
    return Reading(
        device_id="cuff-7", metric=metric, value=value, unit=unit, measured_at=at,
        original_value=value, original_unit=unit,
    )  # fmt: skip


def build(*readings: Reading, name: str = "Jane Q Public", mrn: str = "MRN-1") -> str:
    builder = OruBuilder(HEADER, build_codes(load_catalogue()))
    item = OruItem(readings, PatientRef(mrn, name), DeviceRef("cuff-7", "bp", "Omron", "HEM", "S1"))
    return encode(builder.build(item, "R0123456789ABCDEF012", NOW)).decode("utf-8")


def strict(text: str):  # type: ignore[no-untyped-def]
    message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    assert message.validate()
    return message


def test_single_reading_every_segment_and_field() -> None:
    text = build(reading("heart_rate", 72.0, "/min"))
    assert text.endswith("\r") and text.count("\r") == 4
    m = strict(text)
    msh = m.msh
    assert msh.msh_1.value == "|" and msh.msh_2.value == "^~\\&"
    assert (msh.msh_3.value, msh.msh_4.value, msh.msh_5.value, msh.msh_6.value) == (
        "RPM-INGEST", "clinic-a", "EHR", "HOSPITAL",
    )  # fmt: skip
    assert msh.msh_7.value == "20260301100000.2500+0000"
    assert msh.msh_9.to_er7() == "ORU^R01^ORU_R01"
    assert msh.msh_10.value == "R0123456789ABCDEF012"
    assert (msh.msh_11.value, msh.msh_12.value, msh.msh_15.value, msh.msh_16.value) == (
        "P",
        "2.6",
        "AL",
        "NE",
    )
    assert msh.msh_18.value == "UNICODE UTF-8"
    assert msh.msh_21.to_er7() == "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO"
    result = m.oru_r01_patient_result
    pid = result.oru_r01_patient.pid
    assert pid.pid_3.to_er7() == "MRN-1^^^HOSP-MRN^MR"
    assert pid.pid_5.to_er7() == "Public^Jane Q"
    order = result.oru_r01_order_observation
    obr = order.obr
    assert obr.obr_1.value == "1"
    assert obr.obr_3.to_er7() == "R0123456789ABCDEF012^RPM-INGEST"
    assert obr.obr_4.to_er7() == "147842^MDC_ECG_HEART_RATE^MDC^8867-4^Heart rate^LN"
    assert obr.obr_7.value == "20260301093015+0000"
    (observation,) = order.oru_r01_observation
    obx = observation.obx
    assert obx.obx_1.value == "1" and obx.obx_2.value == "NM"
    assert obx.obx_3.to_er7() == "147842^MDC_ECG_HEART_RATE^MDC^8867-4^Heart rate^LN"
    assert obx.obx_5.to_er7() == "72"
    assert obx.obx_6.to_er7() == "/min^/min^UCUM"
    assert obx.obx_11.value == "R"
    assert obx.obx_14.value == "20260301093015+0000"
    assert obx.obx_18.to_er7() == "cuff-7^RPM-INGEST"


def test_blood_pressure_panel_is_one_message_with_an_obx_per_component() -> None:
    text = build(
        reading("systolic_bp", 128.0, "mm[Hg]"),
        reading("diastolic_bp", 84.0, "mm[Hg]"),
        reading("mean_arterial_pressure", 98.7, "mm[Hg]"),
    )
    order = strict(text).oru_r01_patient_result.oru_r01_order_observation
    assert order.obr.obr_4.to_er7() == (
        "150020^MDC_PRESS_BLD_NONINV^MDC^85354-9^Blood pressure panel with all children optional^LN"
    )
    rows = [
        (
            o.obx.obx_1.value,
            o.obx.obx_3.to_er7(),
            o.obx.obx_4.value,
            o.obx.obx_5.to_er7(),
            o.obx.obx_6.to_er7(),
        )
        for o in order.oru_r01_observation
    ]
    assert rows == [
        ("1", "150021^MDC_PRESS_BLD_NONINV_SYS^MDC^8480-6^Systolic blood pressure^LN", "1.1", "128",
         "mm[Hg]^mm[Hg]^UCUM"),
        ("2", "150022^MDC_PRESS_BLD_NONINV_DIA^MDC^8462-4^Diastolic blood pressure^LN", "1.2", "84",
         "mm[Hg]^mm[Hg]^UCUM"),
        ("3", "150023^MDC_PRESS_BLD_NONINV_MEAN^MDC^8478-0^Mean blood pressure^LN", "1.3", "98.7",
         "mm[Hg]^mm[Hg]^UCUM"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("metric", "value", "unit", "obx3", "obx5"),
    [
        ("spo2", 97.0, "%", "150456^MDC_PULS_OXIM_SAT_O2^MDC^59408-5", "97"),
        ("body_temperature", 36.85, "Cel", "150364^MDC_TEMP_BODY^MDC^8310-5", "36.85"),
        ("respiratory_rate", 16.0, "/min", "151562^MDC_RESP_RATE^MDC^9279-1", "16"),
        ("body_weight", 81.64663, "kg", "188736^MDC_MASS_BODY_ACTUAL^MDC^29463-7", "81.64663"),
        ("blood_glucose", 99.0864, "mg/dL", "160184^MDC_CONC_GLU_CAPILLARY_WHOLEBLOOD^MDC^2339-0", "99.0864"),
        ("steps", 5000.0, "{steps}", "55423-8^Number of steps in unspecified time Pedometer^LN", "5000"),
    ],
)
def test_each_metric_is_coded_mdc_then_loinc(
    metric: str, value: float, unit: str, obx3: str, obx5: str
) -> None:
    obx = strict(build(reading(metric, value, unit))).oru_r01_patient_result.oru_r01_order_observation
    obx = obx.oru_r01_observation[0].obx
    assert obx.obx_3.to_er7().startswith(obx3)
    assert obx.obx_5.to_er7() == obx5
    assert obx.obx_6.to_er7() == f"{unit}^{unit}^UCUM"


def test_a_name_with_component_and_field_separators_round_trips() -> None:
    text = build(reading("heart_rate", 72.0, "/min"), name="O|Brien~X, Ann^Marie & \\Jo\\ Zoë")
    assert "\\F\\" in text and "\\S\\" in text and "\\R\\" in text and "\\T\\" in text and "\\E\\" in text
    pid = strict(text).oru_r01_patient_result.oru_r01_patient.pid
    family = pid.pid_5.pid_5_1.to_er7()
    given = pid.pid_5.pid_5_2.to_er7()
    # hl7apy hands back the escaped text (it has no unescape): undo it by the table of HL7 v2.6
    # chapter 2.7.1, written out here rather than taken from the product
    assert unescape(family) == "O|Brien~X"
    assert unescape(given) == "Ann^Marie & \\Jo\\ Zoë"


def unescape(text: str) -> str:
    table = {"F": "|", "S": "^", "T": "&", "R": "~", "E": "\\"}
    parts = text.split("\\")
    assert len(parts) % 2 == 1, text
    return "".join(part if n % 2 == 0 else table[part] for n, part in enumerate(parts))


def test_times_carry_their_offset_and_are_sent_in_utc() -> None:
    local = datetime(2026, 3, 1, 4, 30, 15, 123456, tzinfo=timezone(timedelta(hours=-5)))
    obx = strict(build(reading("heart_rate", 72.0, "/min", at=local))).oru_r01_patient_result
    assert obx.oru_r01_order_observation.oru_r01_observation[0].obx.obx_14.value == "20260301093015.1234+0000"


def test_a_value_in_another_unit_than_the_catalogues_is_refused() -> None:
    with pytest.raises(MappingError, match="catalogue says 'Cel'"):
        build(reading("body_temperature", 98.6, "[degF]"))


def test_an_unknown_metric_is_refused() -> None:
    with pytest.raises(MappingError, match="not in the catalogue"):
        build(reading("not_a_metric", 1.0, "1"))


def test_numbers_and_names() -> None:
    assert [format_number(v) for v in (120.0, 36.85, 0.0, 1e-7, 123456789.0)] == [
        "120", "36.85", "0", "0.0000001", "123456789",
    ]  # fmt: skip
    assert split_name("Doe, Jane") == ("Doe", "Jane")
    assert split_name("Jane van Doe") == ("Doe", "Jane van")
    assert split_name("Cher") == ("Cher", "")

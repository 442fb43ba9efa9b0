"""``rpm-ingest ble decode`` as docs/contract/cli-and-api.md specifies it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ingest.commands.ble import ble

BPM_HEX = "1e79004f005d00e8070305071e008200ff0800"  # vector bpm-full-with-date


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(ble, ["decode", *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_heart_rate_prints_one_json_object() -> None:
    # zephyr subsys/bluetooth/services/hrs.c: flags 0x06, 90 bpm
    code, out, err = run("2a37", "065a")
    assert (code, err) == (0, "")
    assert out.count("\n") == 1
    assert json.loads(out) == {
        "characteristic": "2a37",
        "name": "heart_rate_measurement",
        "fields": {
            "heart_rate_bpm": 90,
            "heart_rate_format": "uint8",
            "sensor_contact": "detected",
            "energy_expended_kj": None,
            "rr_intervals_raw_1_1024s": None,
            "rr_intervals_s": None,
        },
        "readings": [
            {"metric": "heart_rate", "value": 90.0, "unit": "/min", "measured_at": None, "status": []}
        ],
    }


def test_blood_pressure_with_device_time_and_flags() -> None:
    code, out, _ = run("00002a35-0000-1000-8000-00805f9b34fb", BPM_HEX)
    assert code == 0
    doc = json.loads(out)
    assert doc["characteristic"] == "2a35"
    assert doc["readings"] == [
        {
            "metric": metric,
            "value": value,
            "unit": unit,
            "measured_at": "2024-03-05T07:30:00",
            "status": ["pulse_rate_exceeds_upper_limit"],
        }
        for metric, value, unit in [
            ("systolic_bp", 121.0, "mm[Hg]"),
            ("diastolic_bp", 79.0, "mm[Hg]"),
            ("mean_arterial_pressure", 93.0, "mm[Hg]"),
            ("heart_rate", 130.0, "/min"),
        ]
    ]


def test_values_are_canonical_and_specials_are_strings() -> None:
    # nguyenquocanhz sig.test.ts: 98.6 degF; vector bpm-map-nan
    _, out, _ = run("0x2A1C", "01 da 03 00 ff")
    assert json.loads(out)["readings"][0]["value"] == 37.0
    _, out, _ = run("2a35", "00:78:00:50:00:ff:07")
    doc = json.loads(out)
    assert doc["fields"]["mean_arterial_pressure"] == "NaN"
    assert [r["metric"] for r in doc["readings"]] == ["systolic_bp", "diastolic_bp"]


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("2a37", "01"), "Heart Rate Measurement"),  # uint16 flag, no HR
        (("2a37", "0"), "odd number of digits"),
        (("2a37", "zz"), "not a hex digit"),
        (("2a37", ""), "Heart Rate Measurement"),
        (("2a38", "065a"), "not supported"),
        (("nonsense", "065a"), "not a 16-bit UUID"),
        (("2a52", "0401"), "client request"),  # a request, read as an indication
        (("2a37", "00" * 3000), "over"),
    ],
)
def test_malformed_input_exits_1_with_the_reason_on_stderr(args: tuple[str, str], reason: str) -> None:
    code, out, err = run(*args)
    assert code == 1
    assert out == ""
    assert reason in err


def test_racp_request_with_direction_write() -> None:
    # Nordic RecordAccessControlPointData.reportNumberOfAllStoredRecords(): 04 01
    code, out, _ = run("2a52", "0401", "--direction", "write")
    assert code == 0
    assert json.loads(out)["fields"]["op_code_name"] == "report_number_of_stored_records"


def test_stdin_mode_prints_one_line_per_input_line_and_exits_1_at_the_end() -> None:
    stdin = "2a37 065a\n\n2a1c 01da0300ff\n2a37 01\n2a18 030a00e807010f081e00000064b011\njunk\n"
    code, out, _ = run("-", "-", stdin=stdin)
    assert code == 1
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line.get("characteristic") for line in lines] == ["2a37", "2a1c", None, "2a18", None]
    assert lines[2]["error"].startswith("Heart Rate Measurement")
    assert lines[2]["line"] == 4
    assert "CHARACTERISTIC HEX" in lines[4]["error"]
    assert lines[3]["readings"][0]["measured_at"] == "2024-01-15T08:30:00"


def test_stdin_mode_all_good_exits_0_and_bare_hex_uses_the_argument() -> None:
    code, out, _ = run("2a37", "-", stdin="065a\n2a1c 01da0300ff\n")
    assert code == 0
    assert [json.loads(line)["characteristic"] for line in out.splitlines()] == ["2a37", "2a1c"]
    code, out, _ = run("-", stdin="2a37 065a\n")
    assert code == 0
    assert json.loads(out)["fields"]["heart_rate_bpm"] == 90


def test_stdin_mode_survives_an_oversized_line() -> None:
    code, out, _ = run("-", "-", stdin="2a37 " + "0" * 20000 + "\n2a37 065a\n")
    assert code == 1
    first, second = (json.loads(line) for line in out.splitlines())
    assert "over" in first["error"]
    assert second["fields"]["heart_rate_bpm"] == 90


def test_missing_hex_is_a_usage_error() -> None:
    code, _, err = run("2a37")
    assert code == 2
    assert "HEX" in err


def test_help_documents_the_command() -> None:
    result = CliRunner().invoke(ble, ["decode", "--help"])
    assert result.exit_code == 0
    assert "CHARACTERISTIC HEX" in result.stdout


def _console_script() -> str:
    beside = Path(sys.executable).with_name("rpm-ingest")
    found = str(beside) if beside.exists() else shutil.which("rpm-ingest")
    assert found, "the rpm-ingest console script is not installed"
    return found


def test_real_console_script() -> None:
    script = _console_script()
    done = subprocess.run(
        [script, "ble", "decode", "2a37", "1e5532002100"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["readings"] == [
        {"metric": "heart_rate", "value": 85.0, "unit": "/min", "measured_at": None, "status": []}
    ]
    bad = subprocess.run(
        [script, "ble", "decode", "2a35", "010203040506"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 1
    assert bad.stdout == ""
    assert "Blood Pressure Measurement" in bad.stderr
    piped = subprocess.run(
        [script, "ble", "decode", "-", "-"],
        input="2a37 065a\n2a37 00\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert piped.returncode == 1
    assert len(piped.stdout.splitlines()) == 2

"""The clinical defaults seeded at migrate (from the registry of rule kinds): complete, valid,
plausible, and exactly what docs/alerts.md says they are."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from devices.catalogue import load_catalogue
from ingest.alerts.kinds import parse_params
from ingest.alerts.kinds.threshold import ThresholdParams

DOCS = Path(__file__).resolve().parents[3] / "docs" / "alerts.md"


def defaults(db_url: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(db_url) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT key, kind, metric, enabled, params FROM alert_rules"
            " WHERE clinic_id IS NULL AND patient_id IS NULL"
        )
        return {r["key"]: r for r in cur.fetchall()}


def test_every_metric_has_a_threshold_and_a_missing_data_rule(db_url: str) -> None:
    rules = defaults(db_url)
    for metric in load_catalogue():
        assert rules[f"threshold:{metric}"]["metric"] == metric
        assert rules[f"missing:{metric}"]["kind"] == "missing_data"
    for key, row in rules.items():
        parse_params(row["kind"], row["params"])  # raises when invalid
        assert row["enabled"] is not None, key


def test_threshold_defaults_are_inside_the_plausible_range(db_url: str) -> None:
    catalogue = load_catalogue()
    for key, row in defaults(db_url).items():
        if row["kind"] != "threshold":
            continue
        p = parse_params("threshold", row["params"])
        assert isinstance(p, ThresholdParams)
        metric = catalogue[row["metric"]]
        for bound in (p.low, p.high, p.critical_low, p.critical_high):
            assert bound is None or metric.plausible_min < bound < metric.plausible_max, key


def _cell(text: str) -> float | None:
    text = text.strip()
    return None if text in ("—", "-", "") else float(text)


def test_the_documented_defaults_are_the_seeded_ones(db_url: str) -> None:
    rules = defaults(db_url)
    doc = DOCS.read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(threshold:[a-z0-9_]+)` \|([^\n]*)$", doc, flags=re.MULTILINE)
    documented = {key: rest.split("|")[:6] for key, rest in rows}
    seeded = {k for k, r in rules.items() if r["kind"] == "threshold"}
    assert set(documented) == seeded
    for key, cells in documented.items():
        params = rules[key]["params"]
        expected = [
            params["low"],
            params["high"],
            params["critical_low"],
            params["critical_high"],
            params["hysteresis"],
            params["consecutive"],
        ]
        assert [_cell(c) for c in cells] == expected, key
    for key in rules:
        assert f"`{key}`" in doc, f"{key} is not documented"

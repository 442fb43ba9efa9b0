"""The pure decision functions and rule validation (no database): edges, debounce runs, late
readings, tolerance, and properties checked over generated inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.alerts import evaluate
from ingest.alerts.evaluate import AlertState, Clear, Keep, Open, Point
from ingest.alerts.kinds import merge, parse_params, rate_of_change, threshold
from ingest.alerts.kinds.rate_of_change import Baseline, RateParams
from ingest.alerts.kinds.threshold import ThresholdParams, threshold_params
from ingest.alerts.rules import RuleRow
from ingest.errors import InvalidRule

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
HR = ThresholdParams(low=50, high=110, critical_low=40, critical_high=130, hysteresis=5, consecutive=2)


def pts(*values: float, step_s: int = 60, new_from: int = 0) -> list[Point]:
    return [Point(T0 + timedelta(seconds=i * step_s), v, "D", i >= new_from) for i, v in enumerate(values)]


def test_levels_at_the_edges() -> None:
    assert [HR.level(v) for v in (110, 110.01, 130, 130.01, 105.01, 105, 50, 49.9, 40, 39.9, 54.99, 55)] == [
        "margin",
        "warning",
        "warning",
        "critical",
        "margin",
        "normal",
        "margin",
        "warning",
        "warning",
        "critical",
        "margin",
        "normal",
    ]


def test_warning_needs_the_run_and_critical_does_not() -> None:
    one = pts(120)
    assert threshold.decide(HR, one, 0, None) is None
    two = pts(120, 121)
    decision = threshold.decide(HR, two, 1, None)
    assert isinstance(decision, Open) and decision.severity == "warning"
    assert decision.onset_at == T0 and decision.details["readings_in_episode"] == 2
    critical = threshold.decide(HR, pts(135), 0, None)
    assert isinstance(critical, Open) and critical.severity == "critical"
    strict = ThresholdParams(**{**HR.model_dump(), "debounce_critical": True})
    assert threshold.decide(strict, pts(135), 0, None) is None


def test_a_late_reading_joins_newer_stored_readings_into_a_run() -> None:
    points = [Point(T0, 120, "D", True), Point(T0 + timedelta(minutes=1), 121, "D", False)]
    decision = threshold.decide(HR, points, 0, None)
    assert isinstance(decision, Open) and decision.latest_at == T0 + timedelta(minutes=1)


def test_sustained_span() -> None:
    p = ThresholdParams(low=92, hysteresis=1, sustained_seconds=600)
    assert threshold.decide(p, pts(90, 90, step_s=599), 1, None) is None
    assert isinstance(threshold.decide(p, pts(90, 90, step_s=600), 1, None), Open)


def test_open_alert_is_kept_raised_or_cleared() -> None:
    state = AlertState("warning", T0)
    keep = threshold.decide(HR, pts(0, 118, new_from=1), 1, state)
    assert keep == Keep(T0 + timedelta(minutes=1), 118, None)
    raised = threshold.decide(HR, pts(0, 140, new_from=1), 1, state)
    assert isinstance(raised, Keep) and raised.raise_to == "critical"
    assert threshold.decide(HR, pts(0, 107, new_from=1), 1, state) is None  # margin
    assert threshold.decide(HR, pts(0, 80, new_from=1), 1, state) == Clear(T0 + timedelta(minutes=1), 80)
    lower = threshold.decide(HR, pts(0, 120, new_from=1), 1, AlertState("critical", T0))
    assert isinstance(lower, Keep) and lower.raise_to is None


@settings(max_examples=300, deadline=None)
@given(
    value=st.floats(min_value=20, max_value=300, allow_nan=False),
    behind=st.integers(min_value=0, max_value=10_000),
    severity=st.sampled_from(["warning", "critical"]),
)
def test_a_reading_never_clears_an_alert_held_by_a_newer_one(
    value: float, behind: int, severity: str
) -> None:
    latest = T0 + timedelta(seconds=10_000)
    at = latest - timedelta(seconds=behind)
    state = AlertState(severity, latest)  # type: ignore[arg-type]
    point = Point(at, value, "D", True)
    assert not isinstance(threshold.decide(HR, [point], 0, state), Clear)
    rate = RateParams(delta=1.0, window_seconds=86400)
    assert not isinstance(rate_of_change.decide(rate, point, Baseline(value, at), state), Clear)
    assert not isinstance(evaluate.flags(["x"], "warning", True, at, set(), state), Clear)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.floats(min_value=20, max_value=300, allow_nan=False), min_size=1, max_size=30),
)
def test_an_alert_opens_only_on_an_out_of_range_reading(values: list[float]) -> None:
    points = pts(*values)
    for i, point in enumerate(points):
        decision = threshold.decide(HR, points, i, None)
        if isinstance(decision, Open):
            assert HR.level(point.value) in ("warning", "critical")
            assert decision.onset_at <= point.at <= decision.latest_at


def test_rate_tolerance_and_missing_baseline() -> None:
    p = RateParams(delta=2.3, window_seconds=7 * 86400)
    point = Point(T0, 82.3, "D", True)
    decision = rate_of_change.decide(p, point, Baseline(80.0, T0 - timedelta(days=6)), None)
    assert isinstance(decision, Open)  # 82.3 - 80.0 = 2.2999999999999972
    assert rate_of_change.decide(p, point, None, None) is None
    held = AlertState("warning", T0 - timedelta(days=1))
    assert rate_of_change.decide(p, point, None, held) == Clear(T0, 82.3)
    falling = RateParams(delta=5, window_seconds=3600, direction="fall")
    assert isinstance(rate_of_change.decide(falling, Point(T0, 85, "D", True), Baseline(91, T0), None), Open)


def test_flags() -> None:
    assert isinstance(evaluate.flags(["a", "b"], "warning", True, T0, {"b", "z"}, None), Open)
    assert evaluate.flags(["a"], "warning", True, T0, {"z"}, None) is None
    held = AlertState("warning", T0 - timedelta(minutes=1))
    assert evaluate.flags(["a"], "warning", False, T0, set(), held) is None
    assert evaluate.flags(["a"], "warning", True, T0, set(), held) == Clear(T0, None)


@pytest.mark.parametrize(
    ("kind", "params", "reason"),
    [
        ("threshold", {"low": 10, "high": 5}, "low must be below high"),
        ("threshold", {"low": 90, "high": 100, "hysteresis": 5}, "no room to clear"),
        ("threshold", {"critical_high": 100, "high": 120}, "critical_high must not be below high"),
        ("threshold", {"low": float("nan")}, "finite"),
        ("threshold", {"low": "1"}, "valid number"),
        ("rate_of_change", {"delta": 1, "window_seconds": 60, "critical_delta": 1}, "critical_delta"),
        ("missing_data", {"expected_every_seconds": 59}, "greater than or equal to 60"),
        ("device_status", {"flags": []}, "at least 1"),
        ("device_status", {"flags": ["Bad Flag"]}, "pattern"),
        ("low_battery", {"level_below": 101}, "less than or equal to 100"),
        ("nonsense", {}, "unknown rule kind"),
    ],
)
def test_invalid_parameters_are_refused(kind: str, params: dict[str, object], reason: str) -> None:
    with pytest.raises(InvalidRule, match=reason):
        parse_params(kind, params)


def test_merge_applies_overrides_and_skips_one_that_no_longer_fits() -> None:
    base = RuleRow(1, "threshold:x", "threshold", "x", None, None, True, {"low": 10, "high": 20})
    clinic = RuleRow(2, "threshold:x", "threshold", "x", "c", None, None, {"high": 30})
    rule = merge([base, clinic])
    p = threshold_params(rule)
    assert (p.low, p.high, rule.source, rule.enabled) == (10, 30, "clinic", True)
    broken = RuleRow(3, "threshold:x", "threshold", "x", "c", None, False, {"low": 40})  # low above high
    rule = merge([base, clinic, broken])
    assert (threshold_params(rule).low, rule.source, rule.enabled) == (10, "clinic", True)

"""Alert messages are for people: display labels and units (mmHg, °C, bpm), never UCUM codes."""

from __future__ import annotations

import pytest

from ingest.alerts.kinds.rate_of_change import RateParams
from ingest.alerts.kinds.rate_of_change import message as rate_message
from ingest.alerts.kinds.threshold import ThresholdParams
from ingest.alerts.kinds.threshold import message as threshold_message

BP = ThresholdParams(low=90, high=160, critical_low=80, critical_high=180, hysteresis=5)
TEMP = ThresholdParams(low=35.0, high=38.0, critical_low=34.0, critical_high=39.5)
HR = ThresholdParams(low=50, high=110, critical_low=40, critical_high=130)


@pytest.mark.parametrize(
    ("params", "metric", "value", "severity", "text"),
    [
        (BP, "systolic_bp", 185, "critical", "Systolic blood pressure 185 mmHg above critical high 180"),
        (BP, "systolic_bp", 165, "warning", "Systolic blood pressure 165 mmHg above high 160"),
        (TEMP, "body_temperature", 38.2, "warning", "Temperature 38.2 °C above high 38.0"),
        (TEMP, "body_temperature", 34.85, "warning", "Temperature 34.85 °C below low 35.0"),
        (HR, "heart_rate", 142, "critical", "Heart rate 142 bpm above critical high 130"),
    ],
)
def test_threshold_messages_use_display_units(
    params: ThresholdParams, metric: str, value: float, severity: str, text: str
) -> None:
    message = threshold_message(params, metric, value, severity)
    assert message == text
    assert "mm[Hg]" not in message and "Cel" not in message and "/min" not in message


def test_rate_messages_use_display_units() -> None:
    gain = RateParams(delta=1.0, window_seconds=86400)
    assert rate_message(gain, "body_weight", 1.25) == "Weight rose 1.2 kg within 24 h"
    fall = RateParams(delta=10, window_seconds=3600, direction="fall")
    assert rate_message(fall, "systolic_bp", 25) == "Systolic blood pressure fell 25 mmHg within 1 h"

"""``device_status``: a device reports a status flag (irregular pulse, loose cuff, sensor fault)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Annotated, Final

from pydantic import Field

from ingest.alerts import evaluate
from ingest.alerts.kinds.base import DefaultRule, Measurement, ReadingsRun, RuleKind, apply_flags
from ingest.alerts.rules import Flag, RuleParams, Severity
from ingest.alerts.store import AlertKey

logger = logging.getLogger(__name__)


class StatusParams(RuleParams):
    flags: Annotated[list[Flag], Field(min_length=1, max_length=32)]
    severity: Severity = "warning"
    auto_resolve: bool = True


_BP_MAY_BE_WRONG: Final = "BP reading may be wrong; clears on the next measurement without the flag"

DEFAULTS: Final = (
    DefaultRule(
        "status:irregular_pulse",
        True,
        {"flags": ["irregular_pulse"], "severity": "warning", "auto_resolve": False},
        description="Possible arrhythmia: stays open until a clinician resolves it",
    ),
    DefaultRule(
        "status:cuff_too_loose",
        True,
        {"flags": ["cuff_too_loose"], "severity": "warning", "auto_resolve": True},
        description=_BP_MAY_BE_WRONG,
    ),
    DefaultRule(
        "status:improper_position",
        True,
        {"flags": ["improper_measurement_position"], "severity": "warning", "auto_resolve": True},
        description=_BP_MAY_BE_WRONG,
    ),
    DefaultRule(
        "status:sensor_fault",
        True,
        {
            "flags": [
                "sensor_fault",
                "sensor_malfunction",
                "sensor_malfunctioning",
                "equipment_malfunction",
                "general_device_fault",
                "sensor_disconnected",
                "sensor_displaced",
            ],
            "severity": "warning",
            "auto_resolve": True,
        },
        description="The device reports a fault; clears on the next measurement without it",
    ),
)


class DeviceStatusKind(RuleKind):
    name = "device_status"
    order = 40
    params = StatusParams
    scope = "device"
    label = "device flag"
    description = "A device reports one of a set of status flags with a measurement."

    def defaults(self) -> Sequence[DefaultRule]:
        return DEFAULTS

    def on_measurement(self, run: ReadingsRun, m: Measurement) -> None:
        for rule in run.book.enabled_rules(m.patient_id, kind=self.name):
            p = rule.params
            assert isinstance(p, StatusParams)
            key: AlertKey = (m.patient_id, rule.key, m.device_id)
            decision = evaluate.flags(
                p.flags, p.severity, p.auto_resolve, m.at, m.flags, run.writer.state(key)
            )
            apply_flags(run, m, rule, key, decision, "reports")


KIND: Final = DeviceStatusKind()

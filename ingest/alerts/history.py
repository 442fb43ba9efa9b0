"""The new readings of a batch grouped per patient and metric, and the history the rules need
around them (debounce runs, rate-of-change windows) as the kinds read it. Which history that is,
and its fetching in as few queries as possible, is the planner's (:mod:`ingest.alerts.planner`)."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any, Final
from uuid import UUID

from ingest.alerts.evaluate import Point
from ingest.alerts.rulebook import MetricRules
from ingest.alerts.rules import Rule
from ingest.pipeline import StoredReading

UNSET: Final = object()

GroupKey = tuple[int, str]  # (patient id as an int: hashed in C, unlike UUID; metric)


@dataclass
class Group:
    """The new readings of one patient's metric in this batch, in time order."""

    patient_id: UUID
    metric: str
    readings: list[StoredReading]
    prev_newest: Any = UNSET  # newest measured_at stored before this batch, read on demand
    rules: MetricRules | None = None  # set by the plan, with the batch's rules
    out_of_range: bool = False  # any reading out of range under rules.threshold

    @property
    def new_keys(self) -> set[tuple[str, datetime]]:
        return {(sr.reading.device_id, sr.reading.measured_at) for sr in self.readings}


def group_readings(readings: Sequence[StoredReading]) -> dict[GroupKey, Group]:
    groups: dict[GroupKey, Group] = {}
    for sr in readings:
        key = (sr.patient_id.int, sr.reading.metric)
        group = groups.get(key)
        if group is None:
            group = groups[key] = Group(sr.patient_id, sr.reading.metric, [])
        group.readings.append(sr)
    for g in groups.values():
        if len(g.readings) > 1:
            times = [sr.reading.measured_at for sr in g.readings]
            if not all(map(operator.lt, times, islice(times, 1, None))):  # most batches are in order
                g.readings.sort(key=lambda s: (s.reading.measured_at, s.reading.device_id))
    return groups


@dataclass
class History:
    contexts: dict[tuple[GroupKey, int], list[Point]] = field(default_factory=dict)
    windows: dict[GroupKey, list[Point]] = field(default_factory=dict)


@dataclass
class Plan:
    out_of_range: list[GroupKey] = field(default_factory=list)  # groups under threshold review
    contexts: list[tuple[GroupKey, int]] = field(default_factory=list)  # (group, cluster) per row
    windows: list[GroupKey] = field(default_factory=list)
    rates: dict[GroupKey, list[Rule]] = field(default_factory=dict)
    queries: list[tuple[str, Sequence[Any]]] = field(default_factory=list)


def new_point(sr: StoredReading) -> Point:
    r = sr.reading
    return Point(r.measured_at, r.value, r.device_id, True)

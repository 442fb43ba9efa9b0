"""The monthly report: the counting query's rows, through the rules, to JSON and CSV.

The report lists every patient of the clinic with an episode overlapping the month, with all
their periods that end in the month (also those with 0 days), the month's clinician minutes and
the codes earned. Beyond the contract each patient carries ``open_period`` (a period that
overlaps the month but ends after it: it bills next month), ``current_period`` (the period running today,
else the latest) and ``progress`` (what is still needed for the next codes: days in the current
period, minutes this month), which the dashboard shows.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final
from uuid import UUID

import psycopg

from ingest.billing import queries
from ingest.billing.months import Month
from ingest.billing.rules import (
    Code,
    EpisodePeriods,
    Period,
    Progress,
    current_period,
    day_progress,
    ends_in,
    minute_progress,
    month_codes,
)

CSV_HEADER: Final = (
    "mrn",
    "display_name",
    "code",
    "units",
    "period_start",
    "period_end",
    "days_with_readings",
    "management_minutes",
)
# A cell a spreadsheet would run as a formula (CSV injection, OWASP) gets a leading apostrophe.
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class PatientMonth:
    patient_id: UUID
    mrn: str
    display_name: str
    periods: list[Period]
    open_period: Period | None
    minutes: int
    interactive: bool
    codes: list[Code]
    progress: list[Progress] = field(default_factory=list)
    current: Period | None = None  # the period running on the report's "today" (or the latest)


@dataclass(frozen=True, slots=True)
class MonthReport:
    month: Month
    clinic: str
    timezone: str
    patients: list[PatientMonth]


def build_report(
    conn: psycopg.Connection[Any],
    *,
    clinic_id: str,
    timezone: str,
    month: Month,
    today: date,
    patient_id: UUID | None = None,
) -> MonthReport:
    """Count in SQL, decide in :mod:`ingest.billing.rules`. ``today`` is the clinic-local date
    progress is measured on (days left in a running period)."""
    with queries.clinic_time(conn, timezone):
        rows = queries.month_periods(conn, clinic_id, month, patient_id)
        minutes = queries.month_minutes(conn, clinic_id, month, patient_id)
        episodes = _episodes_by_patient(rows)
        people = queries.patients(conn, list(episodes)) if episodes else []
    out: list[PatientMonth] = []
    for person in people:
        pid: UUID = person["id"]
        eps = episodes[pid]
        total, interactive = minutes.get(pid, (0, False))
        periods = [p for e in eps for p in e.periods if ends_in(p, month)]
        later = [p for e in eps for p in e.periods if p.end > month.last_day]
        progress = [minute_progress(total, interactive)]
        running = current_period(eps, today, month)
        if running is not None:
            days = day_progress(running, today)
            if days is not None:
                progress.insert(0, days)
        out.append(
            PatientMonth(
                patient_id=pid,
                mrn=person["mrn"],
                display_name=person["display_name"],
                periods=periods,
                open_period=later[-1] if later else None,
                minutes=total,
                interactive=interactive,
                codes=month_codes(eps, total, interactive, month),
                progress=progress,
                current=running,
            )
        )
    return MonthReport(month, clinic_id, timezone, out)


def _episodes_by_patient(rows: Iterable[dict[str, Any]]) -> dict[UUID, list[EpisodePeriods]]:
    grouped: dict[UUID, dict[int, list[dict[str, Any]]]] = defaultdict(dict)
    for row in rows:
        grouped[row["patient_id"]].setdefault(row["episode_id"], []).append(row)
    result: dict[UUID, list[EpisodePeriods]] = {}
    for pid, by_episode in grouped.items():
        result[pid] = [
            EpisodePeriods(
                episode_id=eid,
                periods=[
                    Period(eid, r["index"], r["start"], r["end"], r["days"])
                    for r in sorted(ep_rows, key=lambda r: r["index"])
                ],
                setup_earned_before=any(r["setup_earned_before"] for r in ep_rows),
            )
            for eid, ep_rows in sorted(by_episode.items(), key=lambda kv: kv[1][0]["start"])
        ]
    return result


def _period_json(p: Period) -> dict[str, Any]:
    return {"start": p.start.isoformat(), "end": p.end.isoformat(), "days_with_readings": p.days}


def report_json(report: MonthReport) -> dict[str, Any]:
    """The contract's JSON answer (plus ``timezone``, ``open_period``, ``current_period`` and
    ``progress``)."""
    return {
        "month": str(report.month),
        "clinic": report.clinic,
        "timezone": report.timezone,
        "patients": [
            {
                "patient_id": str(p.patient_id),
                "mrn": p.mrn,
                "display_name": p.display_name,
                "periods": [_period_json(x) for x in p.periods],
                "management_minutes": p.minutes,
                "interactive": p.interactive,
                "codes": [
                    {
                        "code": c.code,
                        "units": c.units,
                        "period_start": c.period_start.isoformat(),
                        "period_end": c.period_end.isoformat(),
                    }
                    for c in p.codes
                ],
                "open_period": None if p.open_period is None else _period_json(p.open_period),
                "current_period": None if p.current is None else _period_json(p.current),
                "progress": [
                    {"code": g.code, "more": g.more, "unit": g.unit, "reachable": g.reachable}
                    for g in p.progress
                ],
            }
            for p in report.patients
        ],
    }


def _cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def report_csv(report: MonthReport) -> str:
    """One row per patient and code under the contract's header; ``days_with_readings`` empty on
    management rows; ``management_minutes`` the month's total on every row. Patients without a
    code have no row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for p in report.patients:
        for c in p.codes:
            writer.writerow(
                (
                    _cell(p.mrn),
                    _cell(p.display_name),
                    c.code,
                    c.units,
                    c.period_start.isoformat(),
                    c.period_end.isoformat(),
                    "" if c.days is None else c.days,
                    p.minutes,
                )
            )
    return buffer.getvalue()

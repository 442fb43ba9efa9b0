"""Patient-specific thresholds of the demo patients, set through the alert rules' overrides."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import psycopg

from ingest.alerts.config import set_override
from ingest.demo.clinic import CLINIC_ID, DemoPatient


def apply(conn: psycopg.Connection[Any], patients: Sequence[DemoPatient], ids: Mapping[str, UUID]) -> None:
    for patient in patients:
        for metric, params in patient.thresholds.items():
            set_override(
                conn,
                f"threshold:{metric}",
                clinic_id=CLINIC_ID,
                patient_id=ids[patient.mrn],
                enabled=None,
                params=params,
                updated_by="demo",
            )

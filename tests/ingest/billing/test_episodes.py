"""Monitoring episodes follow device assignments (the migration's trigger), explicit starts and
``end_monitoring`` (the call other features make when monitoring ends)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from ingest.billing.episodes import end_monitoring, list_episodes, start_episode
from ingest.billing.errors import EpisodeConflict
from ingest.store import roster

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _patient(conn: psycopg.Connection[Any], mrn: str) -> UUID:
    row = roster.create_patient(conn, clinic_id="default", mrn=mrn, display_name=mrn, fhir_patient_id=None)
    return UUID(str(row["id"]))


def _device(conn: psycopg.Connection[Any], device_id: str) -> str:
    roster.create_device(
        conn,
        device_id=device_id,
        clinic_id="default",
        type_="scale",
        manufacturer=None,
        model=None,
        serial=None,
    )
    return device_id


def _spans(conn: psycopg.Connection[Any], patient: UUID) -> list[tuple[datetime, datetime | None, str]]:
    return [(e["started_at"], e["ended_at"], e["started_by"]) for e in list_episodes(conn, patient)]


def test_first_assignment_opens_an_episode_and_the_last_unassignment_ends_it(pool: ConnectionPool) -> None:
    with pool.connection() as conn:
        p = _patient(conn, "A1")
        d1, d2 = _device(conn, "scale-1"), _device(conn, "cuff-1")
        roster.assign_device(conn, device_id=d1, patient_id=p, since=T0)
        roster.assign_device(conn, device_id=d2, patient_id=p, since=T0 + timedelta(days=2))
        assert _spans(conn, p) == [(T0, None, "assignment")]
        roster.assign_device(conn, device_id=d1, patient_id=None, since=T0 + timedelta(days=5))
        assert _spans(conn, p) == [(T0, None, "assignment")], "one device is still the patient's"
        roster.assign_device(conn, device_id=d2, patient_id=None, since=T0 + timedelta(days=9))
        assert _spans(conn, p) == [(T0, T0 + timedelta(days=9), "assignment")]
        roster.assign_device(conn, device_id=d1, patient_id=p, since=T0 + timedelta(days=40))
        assert _spans(conn, p) == [
            (T0, T0 + timedelta(days=9), "assignment"),
            (T0 + timedelta(days=40), None, "assignment"),
        ]


def test_a_device_given_to_another_patient_ends_the_first_patients_episode(pool: ConnectionPool) -> None:
    with pool.connection() as conn:
        a, b = _patient(conn, "A"), _patient(conn, "B")
        d = _device(conn, "ox-1")
        roster.assign_device(conn, device_id=d, patient_id=a, since=T0)
        roster.assign_device(conn, device_id=d, patient_id=b, since=T0 + timedelta(days=3))
        assert _spans(conn, a) == [(T0, T0 + timedelta(days=3), "assignment")]
        assert _spans(conn, b) == [(T0 + timedelta(days=3), None, "assignment")]


def test_end_monitoring_is_idempotent_and_never_ends_before_the_start(pool: ConnectionPool) -> None:
    with pool.connection() as conn:
        p = _patient(conn, "A")
        roster.assign_device(conn, device_id=_device(conn, "d"), patient_id=p, since=T0)
        end = T0 + timedelta(days=12)
        end_monitoring(conn, p, end)
        end_monitoring(conn, p, end + timedelta(days=1))
        assert _spans(conn, p) == [(T0, end, "assignment")]
        q = _patient(conn, "Q")
        roster.assign_device(conn, device_id=_device(conn, "e"), patient_id=q, since=T0)
        end_monitoring(conn, q, T0 - timedelta(days=1))
        assert _spans(conn, q) == [(T0, T0, "assignment")]
        end_monitoring(conn, _patient(conn, "never-monitored"), end)  # nothing to end: no error
        with pytest.raises(ValueError, match="aware"):
            end_monitoring(conn, p, datetime(2026, 3, 1))  # noqa: DTZ001


def test_an_explicit_start_ends_the_open_episode_and_never_overlaps_another(pool: ConnectionPool) -> None:
    with pool.connection() as conn:
        p = _patient(conn, "A")
        start_episode(conn, p, T0)
        start_episode(conn, p, T0 + timedelta(days=45))
        assert _spans(conn, p) == [
            (T0, T0 + timedelta(days=45), "explicit"),
            (T0 + timedelta(days=45), None, "explicit"),
        ]
        with pytest.raises(EpisodeConflict):
            start_episode(conn, p, T0 + timedelta(days=10))
        with pytest.raises(EpisodeConflict):
            start_episode(conn, p, T0 + timedelta(days=45))
        # a device assignment while an episode is open adds nothing
        roster.assign_device(conn, device_id=_device(conn, "d"), patient_id=p, since=T0 + timedelta(days=50))
        assert len(_spans(conn, p)) == 2


def test_an_assignment_replaced_at_the_same_instant_moves_the_episode(pool: ConnectionPool) -> None:
    with pool.connection() as conn:
        a, b = _patient(conn, "A"), _patient(conn, "B")
        d = _device(conn, "cuff")
        roster.assign_device(conn, device_id=d, patient_id=a, since=T0)
        roster.assign_device(conn, device_id=d, patient_id=b, since=T0)  # a correction: it was B's
        assert _spans(conn, a) == [(T0, T0, "assignment")]  # empty: never reported
        assert _spans(conn, b) == [(T0, None, "assignment")]

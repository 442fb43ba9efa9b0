"""Migration 0011 on a database that already has device assignments: each patient assigned before
it gets one monitoring episode, from their first assignment until their last device left them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from ingest.db.migrate import available_migrations
from tests.support.db import database_before

T0 = datetime(2026, 2, 1, 9, tzinfo=UTC)


@pytest.fixture
def before_billing() -> Iterator[str]:
    """A database with the migrations before 0011 only."""
    with database_before(11) as url:
        yield url


def test_existing_assignments_become_episodes(before_billing: str) -> None:
    [billing] = [m for m in available_migrations() if m.version == 11]
    with psycopg.connect(before_billing, autocommit=True) as conn:
        ids = {}
        for mrn in ("kept", "unassigned", "moved", "never"):
            row = conn.execute(
                "INSERT INTO patients (clinic_id, mrn, display_name) VALUES ('default', %s, %s) RETURNING id",
                (mrn, mrn),
            ).fetchone()
            assert row is not None
            ids[mrn] = row[0]
        for device in ("A", "B", "C"):
            conn.execute(
                "INSERT INTO devices (id, clinic_id, type) VALUES (%s, 'default', 'scale')", (device,)
            )
        assignments = [
            ("A", ids["kept"], T0),
            ("B", ids["unassigned"], T0 + timedelta(days=1)),
            ("B", None, T0 + timedelta(days=5)),
            ("C", ids["moved"], T0),
            ("C", ids["kept"], T0 + timedelta(days=3)),
        ]
        for device, patient, since in assignments:
            conn.execute(
                "INSERT INTO device_assignments (device_id, patient_id, since) VALUES (%s, %s, %s)",
                (device, patient, since),
            )
        conn.execute(billing.sql)
        rows = conn.execute(
            "SELECT patient_id, started_at, ended_at, started_by FROM monitoring_episodes"
        ).fetchall()
        tz = conn.execute("SELECT timezone FROM clinics WHERE id = 'default'").fetchone()
    episodes = {r[0]: (r[1], r[2], r[3]) for r in rows}
    assert len(rows) == 3 and ids["never"] not in episodes
    assert episodes[ids["kept"]] == (T0, None, "migration")
    assert episodes[ids["unassigned"]] == (T0 + timedelta(days=1), T0 + timedelta(days=5), "migration")
    assert episodes[ids["moved"]] == (T0, T0 + timedelta(days=3), "migration")
    assert tz == ("UTC",)

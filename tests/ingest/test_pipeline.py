"""The pipeline in two parts: ``prepare`` (no database) and ``store`` (in the caller's
transaction), so a batch whose transaction failed is stored again from the same preparation."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from psycopg_pool import ConnectionPool

from ingest.pipeline import Envelope, Pipeline
from ingest.store.deadletters import DeadLetter
from tests.support.export import add_patient, hr

DEVICE = "F0F1F2F3F4F5"  # add_patient's device, assigned a day before the readings


def envelope(body: Any, device_id: str = DEVICE) -> Envelope:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Envelope(source="test", raw=raw, received_at=datetime.now(UTC), device_id=device_id)


class Failed(Exception):
    """The batch's transaction failed after the pipeline stored it."""


def test_a_batch_whose_transaction_failed_is_stored_again_from_the_same_preparation(
    pool: ConnectionPool,
) -> None:
    patient_id = add_patient(pool)
    pipeline = Pipeline()
    batch = [
        envelope({"readings": [hr(70, minute=0), hr(71, minute=1), hr(900, minute=2)]}),  # 900: implausible
        envelope({"readings": [hr(70, minute=0)]}),  # a repeat within the batch
        envelope(b'{"readings": ['),  # not JSON
        envelope({"readings": [hr(72, minute=3)]}, device_id="NOT-REGISTERED"),
    ]
    prepared = pipeline.prepare(batch)
    as_prepared = (copy.deepcopy(prepared.outcomes), prepared.letters, list(prepared.readings))

    with pytest.raises(Failed), pool.connection() as conn, conn.transaction():
        failed = pipeline.store(conn, prepared, collect=[])
        assert [o.accepted for o in failed] == [2, 0, 0, 0]
        raise Failed
    assert (prepared.outcomes, prepared.letters, prepared.readings) == as_prepared

    # What a fresh batch gives (rolled back: the database is as before), then the retry.
    fresh: list[DeadLetter] = []
    with pytest.raises(Failed), pool.connection() as conn, conn.transaction():
        expected = pipeline.process(conn, batch, collect=fresh)
        raise Failed
    letters: list[DeadLetter] = []
    with pool.connection() as conn, conn.transaction():
        outcomes = pipeline.store(conn, prepared, collect=letters)

    assert outcomes == expected
    assert [(o.accepted, o.duplicates, len(o.rejected), o.error is not None) for o in outcomes] == [
        (2, 0, 1, False), (0, 1, 0, False), (0, 0, 0, True), (0, 0, 1, False),
    ]  # fmt: skip
    assert [r.reading.value for r in outcomes[0].new] == [70, 71]
    assert all(r.patient_id == patient_id for r in outcomes[0].new)
    # each dead letter once: the implausible reading, the message that is not JSON, the unknown device
    assert letters == fresh
    assert [(x.device_id, x.reading_index) for x in letters] == [
        (DEVICE, 2), (DEVICE, None), ("NOT-REGISTERED", 0),
    ]  # fmt: skip
    assert "not registered" in letters[2].reason
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT value, patient_id, received_at FROM readings ORDER BY measured_at"
        ).fetchall()
    assert rows == [(70, patient_id, prepared.now), (71, patient_id, prepared.now)]
    assert (prepared.outcomes, prepared.letters, prepared.readings) == as_prepared

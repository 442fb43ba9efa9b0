"""The days with readings (table ``reading_days``, migration 0018): one row per patient and
clinic-local date with at least one stored reading, with the first instant measured on it and a
late one (``last_at``, see :data:`_RECORD`). The report counts days from here instead of from the
readings: a few rows per patient and month instead of every reading.

Written by :class:`ReadingDaysWriter`, the hook on new readings, in the ingest transaction: one
statement per batch copies the batch's new rows (``reading_new``, see
:mod:`ingest.store.readings`) into it, dated in each patient's clinic's time zone. The database
keeps it right elsewhere: a clinic's time-zone change rebuilds that clinic's rows (a trigger),
and ``ingest.billing.episodes.merge_patients`` moves the rows and joins the episodes of a merged
patient. Rows stay when the raw readings age out, so a billed month does not change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import psycopg

from ingest.pipeline import StoredReading
from ingest.store.readings import NEW_READINGS

#: The batch's new rows, one per patient and local date, in key order (two batches of the same
#: patients lock their rows in the same order). ``first_at`` is always the day's first reading.
#: ``last_at`` is a reading of the day that is at or after the patient's latest episode start
#: whenever one is: it is moved later only while it is before that start (all the report asks
#: of it), so a stream of readings does not rewrite its day's row at every batch (that update
#: doubled the hook's cost, bench/billing.py --ingest-batches).
_RECORD: Final = f"""
INSERT INTO reading_days AS d (patient_id, local_date, first_at, last_at)
SELECT n.patient_id, (n.measured_at AT TIME ZONE c.timezone)::date AS local_date,
       min(n.measured_at), max(n.measured_at)
FROM {NEW_READINGS} n
JOIN patients p ON p.id = n.patient_id
JOIN clinics c ON c.id = p.clinic_id
GROUP BY 1, 2
ORDER BY 1, 2
ON CONFLICT (patient_id, local_date) DO UPDATE
SET first_at = least(d.first_at, EXCLUDED.first_at), last_at = greatest(d.last_at, EXCLUDED.last_at)
WHERE EXCLUDED.first_at < d.first_at
   OR (EXCLUDED.last_at > d.last_at AND d.last_at < (
        SELECT max(e.started_at) FROM monitoring_episodes e WHERE e.patient_id = d.patient_id))
"""


class ReadingDaysWriter:
    """The ``NewReadingsHook`` that records the days of newly stored readings (one statement per
    batch; the readings never travel back from the database)."""

    def __call__(self, conn: psycopg.Connection[Any], readings: Sequence[StoredReading]) -> None:
        conn.execute(_RECORD)


def rebuild_clinic(conn: psycopg.Connection[Any], clinic_id: str) -> None:
    """Compute the clinic's rows again from its stored readings (days before its oldest stored
    reading keep theirs). A time-zone change does this by itself (a trigger); this is for data
    written past the ingest path (loads, tests, benchmarks)."""
    conn.execute("SELECT billing_rebuild_reading_days(%s)", (clinic_id,))
